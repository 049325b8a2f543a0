package wsedge

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClipReasonCutsOnCharacterBoundary(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"ascii", strings.Repeat("a", 200)},
		{"two-byte at the cut", strings.Repeat("a", 119) + "é" + "tail"},
		{"three-byte at the cut", strings.Repeat("a", 121) + "€€"},
		{"four-byte everywhere", strings.Repeat("🔔", 40)},
		{"invalid bytes", "bad \xff\xfe token " + strings.Repeat("\xc3", 130)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, max := range []int{120, maxCloseReason} {
				got := clipUTF8(tc.in, max)
				if !utf8.ValidString(got) || len(got) > max {
					t.Fatalf("clipUTF8(%q, %d) = %q: %d bytes, valid %v", tc.in, max, got, len(got), utf8.ValidString(got))
				}
				if valid := strings.ToValidUTF8(tc.in, "\uFFFD"); !strings.HasPrefix(valid, got) || len(valid)-len(got) > 0 && len(got) < max-3 {
					t.Fatalf("clipUTF8(%q, %d) = %q: not the longest prefix that fits", tc.in, max, got)
				}
			}
		})
	}
}

// FuzzClipReason: whatever the input, a close reason is valid UTF-8 of at
// most 123 bytes and a prefix of the (repaired) input.
func FuzzClipReason(f *testing.F) {
	for _, s := range []string{"", "idle timeout", strings.Repeat("é", 70), "\xff\xfe", strings.Repeat("a", 122) + "€"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := clipUTF8(s, maxCloseReason)
		if !utf8.ValidString(got) || len(got) > maxCloseReason {
			t.Fatalf("clipUTF8(%q) = %q (%d bytes)", s, got, len(got))
		}
		if !strings.HasPrefix(strings.ToValidUTF8(s, "\uFFFD"), got) {
			t.Fatalf("clipUTF8(%q) = %q is not a prefix", s, got)
		}
	})
}
