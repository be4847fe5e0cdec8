//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package sqlite_test

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/twilioguard/twilioguard/store/sqlite"
	"github.com/twilioguard/twilioguard/store/storetest"
)

// TestCloseUnlocksSharedFile closes a store while another descriptor shares
// its lock file's open file, as a child process forked by another goroutine
// does until it execs: Close still frees the database.
func TestCloseUnlocksSharedFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "accounts.db")
	s := open(t, path, storetest.Keyring(t, 1))
	rc, err := sqlite.LockFile(s).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	dup := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { dup, derr = syscall.Dup(int(fd)) }); err != nil || derr != nil {
		t.Fatal(err, derr)
	}
	defer syscall.Close(dup)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, path, storetest.Keyring(t, 1))
}
