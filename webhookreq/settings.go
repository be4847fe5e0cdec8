package webhookreq

import (
	"fmt"

	"github.com/twilioguard/twilioguard/internal/bound"
)

// The values of a route's mode and duplicates settings, spelled the same
// in every adapter's configuration (Envoy context extensions, forward-auth
// headers and query parameters, proxy flags).
const (
	// ModeEnforce refuses requests that are not verified (the default).
	ModeEnforce = "enforce"
	// ModeShadow lets every request through and reports its verdict.
	ModeShadow = "shadow"
	// DuplicatesAllow lets a webhook seen before through, marked (the
	// default).
	DuplicatesAllow = "allow"
	// DuplicatesReject refuses a webhook seen before.
	DuplicatesReject = "reject"
)

// ParseMode reports whether the mode setting s is [ModeShadow]; "" is
// [ModeEnforce]. Any other value is an error that quotes it, cut.
func ParseMode(s string) (shadow bool, err error) {
	return parseChoice(s, ModeEnforce, ModeShadow)
}

// ParseDuplicates reports whether the duplicates setting s is
// [DuplicatesReject]; "" is [DuplicatesAllow]. Any other value is an error
// that quotes it, cut.
func ParseDuplicates(s string) (reject bool, err error) {
	return parseChoice(s, DuplicatesAllow, DuplicatesReject)
}

// parseChoice reports whether s is other; "" is def.
func parseChoice(s, def, other string) (bool, error) {
	switch s {
	case "", def:
		return false, nil
	case other:
		return true, nil
	}
	return false, fmt.Errorf("%q is neither %q nor %q", bound.Text(s, bound.LabelBytes), def, other)
}
