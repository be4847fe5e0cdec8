// Package replay recognises a webhook that was verified before: the [Key]
// that identifies one verified webhook, and [Memory], a bounded record of
// keys in the memory of one process. Package store/postgres keeps the same
// record in PostgreSQL, shared by every replica.
//
// A record answers one question atomically: "claim this key". The first
// claim of a key within the replay window wins; every later one, on any
// goroutine (or any replica, for PostgreSQL), is a duplicate and learns when
// the key was first claimed. A key is forgotten only once its window has
// passed.
package replay

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"
)

// KeyBytes is the size of a [Key].
const KeyBytes = 16

// MaxTokenBytes is the longest idempotency token accepted. Twilio's tokens
// are far shorter; a longer one is malformed input.
const MaxTokenBytes = 256

// DefaultWindow is how long a verified webhook is remembered by default.
const DefaultWindow = 24 * time.Hour

// ErrFull is returned by a record that holds as many keys as it may and
// cannot take a new one without forgetting a key whose window has not
// passed, which it never does.
var ErrFull = errors.New("replay record full: no webhook is forgotten before its window ends")

// Key identifies one verified webhook: the first 16 bytes of a SHA-256
// over the account and, when the request carries Twilio's
// I-Twilio-Idempotency-Token, that token, else the signature and the URL.
// Every field is length-prefixed, so no two different inputs share their
// hashed bytes, and every key has the same size whatever the caller sent.
type Key [KeyBytes]byte

// Kinds of keys, hashed in first so that a token can never collide with a
// signature and URL.
const (
	kindToken     = 't'
	kindSignature = 's'
)

// KeyOf returns the key of a verified webhook of account (its SID): from
// token when it is not empty, else from signature and url (the URL that
// the signature matched).
func KeyOf(account, token, signature, url string) Key {
	var stack [512]byte
	b := stack[:0]
	if token != "" {
		b = append(b, kindToken)
		b = appendField(b, account)
		b = appendField(b, token)
	} else {
		b = append(b, kindSignature)
		b = appendField(b, account)
		b = appendField(b, signature)
		b = appendField(b, url)
	}
	sum := sha256.Sum256(b)
	return Key(sum[:KeyBytes])
}

// appendField appends s with its length in front.
func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
