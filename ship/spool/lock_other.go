//go:build !unix

package spool

import (
	"os"
	"path/filepath"
)

// lockDir only creates dir/lock where flock(2) does not exist: two processes
// sharing a spool directory there are not detected.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
}
