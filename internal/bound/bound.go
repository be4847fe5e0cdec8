// Package bound keeps caller-supplied strings safe to put in log lines,
// metric labels and cache keys: cut to a documented length, and, for
// labels, limited in character set and in the number of distinct values.
//
// The limits (also in the README's security section):
//
//   - free text (URLs, paths, hints, error details): [TextBytes] bytes;
//   - a label value (route names): [LabelBytes] bytes of
//     [A-Za-z0-9_.:/-], anything else becomes [Other];
//   - distinct values of one caller-chosen label: [MaxLabels]; later ones
//     become [Other];
//   - entries of a [Cache] keyed by caller-chosen values: its capacity;
//     later ones are not cached.
//
// log/slog's text and JSON handlers already escape control characters, so
// cutting is all a log line needs.
package bound

import (
	"sync"
	"unicode/utf8"
)

// The limits.
const (
	// TextBytes is the most bytes of caller-supplied free text kept.
	TextBytes = 256
	// LabelBytes is the longest label value kept.
	LabelBytes = 64
	// MaxLabels is the most distinct values one [Labels] set keeps.
	MaxLabels = 100
	// Other replaces label values that are not kept.
	Other = "other"
)

// Text returns s cut to at most n bytes on a UTF-8 boundary, with "…"
// appended when it was cut.
func Text(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Labels turns caller-chosen strings into metric label values: at most
// [MaxLabels] distinct values of at most [LabelBytes] bytes of
// [A-Za-z0-9_.:/-]; anything else is [Other], and the empty string is the
// set's default. It is safe for concurrent use; the zero value is not
// usable, create one with [NewLabels].
type Labels struct {
	def  string
	mu   sync.RWMutex
	seen map[string]struct{}
}

// NewLabels returns an empty set whose empty value is def.
func NewLabels(def string) *Labels {
	return &Labels{def: def, seen: make(map[string]struct{})}
}

// Value returns the label value for v.
func (l *Labels) Value(v string) string {
	if v == "" {
		return l.def
	}
	if !validLabel(v) {
		return Other
	}
	l.mu.RLock()
	_, known := l.seen[v]
	l.mu.RUnlock()
	if known {
		return v
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, known := l.seen[v]; known {
		return v
	}
	if len(l.seen) >= MaxLabels {
		return Other
	}
	l.seen[v] = struct{}{}
	return v
}

func validLabel(v string) bool {
	if len(v) > LabelBytes {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == '.' || c == ':' || c == '/') {
			return false
		}
	}
	return true
}
