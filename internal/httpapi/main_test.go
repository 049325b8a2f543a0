package httpapi

import (
	"testing"

	"github.com/heraldrt/herald/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
