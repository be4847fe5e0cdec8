//go:build !race

package postgres

// raceEnabled reports whether the race detector is on; it slows the Go side
// of the scale tests down about twentyfold, so they run smaller then.
const raceEnabled = false
