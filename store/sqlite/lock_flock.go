//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package sqlite

import (
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// lock takes an exclusive flock(2) lock on the lock file of the database at
// path (creating it, mode 0600) and writes this process's pid in it. The
// lock lasts until the file is closed, or the process ends in any way, so a
// crash leaves no stale lock. When another process (or another open file of
// this one) holds it, lock fails with [ErrInUse] and the holder's pid.
func lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path+lockSuffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, inUse(path, holder(f))
		}
		return nil, err
	}
	if err := f.Truncate(0); err != nil {
		_ = unlock(f)
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		_ = unlock(f)
		return nil, err
	}
	return f, nil
}

// unlock releases the lock [lock] took and closes f. It releases the lock
// explicitly rather than by closing f: a child process forked at that moment
// (exec.Command in another goroutine) shares f's open file until it execs,
// and with it the lock, so closing alone could leave the database locked.
func unlock(f *os.File) error {
	if f == nil {
		return nil
	}
	return errors.Join(flock(f, syscall.LOCK_UN), f.Close())
}

// flock applies flock(2) to f, retrying when a signal interrupts it.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// holder reads the pid the lock's holder wrote. A holder that has just
// taken the lock may not have written it yet, so an empty file is read again
// for a moment.
func holder(f *os.File) string {
	for range 20 {
		b, err := io.ReadAll(io.NewSectionReader(f, 0, 32))
		if err != nil || len(b) > 0 {
			return string(b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ""
}
