//go:build unix

package spool

import "syscall"

// diskBytes returns the size of the file system holding dir, or 0 when
// unknown.
func diskBytes(dir string) int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return 0
	}
	return int64(st.Blocks) * int64(st.Bsize)
}
