package signature

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Settings is a parsed X-Twilio-Webhooks-Signature-Settings header: the
// SharedKey a webhook is signed with and the MAC algorithm.
type Settings struct {
	// KeyID is the SharedKey's id.
	KeyID string
	// Algorithm is the MAC algorithm Twilio used.
	Algorithm Algorithm
}

// ParseSettings parses an X-Twilio-Webhooks-Signature-Settings header, such
// as "key=<id>,algorithm=HMAC_SHA256". Fields are separated by commas, may
// come in any order and may be surrounded by spaces; field names and the
// algorithm are case-insensitive; unknown fields are ignored. Without an
// algorithm field the algorithm is HMAC_SHA1, as in twilio-node.
//
// Errors wrap [ErrMalformedRequest]: an empty header, a field without '=',
// a missing or empty key, a field given twice, or an unknown algorithm (that
// error also wraps [ErrAlgorithmNotAllowed]).
func ParseSettings(header string) (Settings, error) {
	if strings.TrimSpace(header) == "" {
		return Settings{}, errorf("empty signature settings header")
	}
	var s Settings
	var haveKey, haveAlg bool
	for f := range strings.SplitSeq(header, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		name, val, ok := strings.Cut(f, "=")
		if !ok {
			return Settings{}, errorf("signature settings field without '='")
		}
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		switch {
		case strings.EqualFold(name, "key"):
			if haveKey {
				return Settings{}, errorf("signature settings name the key twice")
			}
			haveKey, s.KeyID = true, val
		case strings.EqualFold(name, "algorithm"):
			if haveAlg {
				return Settings{}, errorf("signature settings name the algorithm twice")
			}
			alg, err := ParseAlgorithm(val)
			if err != nil {
				return Settings{}, fmt.Errorf("%w: %w", ErrMalformedRequest, err)
			}
			haveAlg, s.Algorithm = true, alg
		}
	}
	if s.KeyID == "" {
		return Settings{}, errorf("signature settings name no key")
	}
	if !haveAlg {
		s.Algorithm = HMACSHA1
	}
	return s, nil
}

// ParseAlgorithm returns the algorithm with the given Twilio name,
// "HMAC_SHA1" or "HMAC_SHA256" (case-insensitive). Other names give an error
// wrapping [ErrAlgorithmNotAllowed].
func ParseAlgorithm(name string) (Algorithm, error) {
	switch {
	case strings.EqualFold(name, "HMAC_SHA1"):
		return HMACSHA1, nil
	case strings.EqualFold(name, "HMAC_SHA256"):
		return HMACSHA256, nil
	}
	if len(name) > 32 {
		name = name[:32] + "…"
	}
	return 0, fmt.Errorf("%w: unknown algorithm %s", ErrAlgorithmNotAllowed, strconv.Quote(name))
}

// CheckAlgorithm returns nil when alg is among allowed, the algorithms a
// SharedKey allows, and [ErrAlgorithmNotAllowed] otherwise, so a header
// cannot downgrade a key to an algorithm it does not allow.
func CheckAlgorithm(alg Algorithm, allowed []Algorithm) error {
	if alg.macLen() == 0 || alg == 0 || !slices.Contains(allowed, alg) {
		return ErrAlgorithmNotAllowed
	}
	return nil
}
