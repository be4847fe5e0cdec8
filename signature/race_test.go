//go:build race

package signature

// raceEnabled says whether the race detector is on. It changes allocation
// counts: it keeps fewer values on the stack, and sync.Pool drops a quarter
// of what is put back, at random.
const raceEnabled = true
