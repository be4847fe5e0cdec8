//go:build !linux

package signature

import "time"

var start = time.Now()

// threadCPU stands in for the calling thread's CPU time where it cannot be
// read: wall time, which a busy machine inflates.
func threadCPU() time.Duration {
	return time.Since(start)
}
