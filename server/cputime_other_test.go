//go:build !unix

package server_test

import "time"

// processCPU is not available on this platform; it returns 0.
func processCPU() time.Duration { return 0 }
