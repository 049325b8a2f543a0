package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// findBinary returns the redis-server executable cfg asks for.
func findBinary(cfg Config) (string, error) {
	if cfg.Binary != "" {
		if !isExecutable(cfg.Binary) {
			return "", fmt.Errorf("%w at %s; install it with `go tool task setup`", ErrNotFound, cfg.Binary)
		}
		return cfg.Binary, nil
	}
	dirs := cfg.SearchDirs
	if dirs == nil {
		dirs = append(filepath.SplitList(os.Getenv("PATH")), defaultSearchDirs...)
	}
	for _, dir := range dirs {
		if dir == "" {
			continue // an empty PATH element means the working directory: not for tests
		}
		if bin := filepath.Join(dir, "redis-server"); isExecutable(bin) {
			return bin, nil
		}
	}
	where := "nowhere (empty search list)"
	if len(dirs) > 0 {
		where = "in " + strings.Join(dirs, ", ")
	}
	return "", fmt.Errorf("%w %s; install it with `go tool task setup`", ErrNotFound, where)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
