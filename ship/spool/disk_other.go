//go:build !unix

package spool

// diskBytes returns 0 (unknown) where statfs(2) does not exist.
func diskBytes(string) int64 { return 0 }
