package sqlite

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrInUse means another process, or another [Store] of this process, has
// the database open: only one may use a database file at a time.
var ErrInUse = errors.New("database in use")

// lockSuffix names the lock file beside the database: "<database>.lock".
const lockSuffix = ".lock"

// inUse returns the error [Open] fails with when the database at path is
// locked; holder is the content of the lock file, the holder's pid.
func inUse(path, holder string) error {
	who := "another process"
	if pid, err := strconv.Atoi(strings.TrimSpace(holder)); err == nil && pid > 0 {
		who = "process " + strconv.Itoa(pid)
		if pid == os.Getpid() {
			who += " (this process)"
		}
	}
	return fmt.Errorf("%w: %s holds %s (lock file %s); only one process may use an SQLite database at a time",
		ErrInUse, who, path, path+lockSuffix)
}
