//go:build race

package signature

// raceSlack is how many more allocations a call may make under the race
// detector, which keeps fewer values on the stack.
const raceSlack = 2
