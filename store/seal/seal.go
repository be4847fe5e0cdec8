// Package seal encrypts secrets at rest with AES-256-GCM.
//
// A [Keyring] holds one primary key, which seals, and any number of old keys,
// which only open. Every sealed value names the key that sealed it by a short
// key id (a hash of the key, never the key itself), so keys can be rotated:
// add the new key as primary, keep the old one until every value has been
// resealed ([Keyring.NeedsReseal]), then drop it.
//
// A sealed value looks like
//
//	v1.<key id>.<base64url(nonce || ciphertext || tag)>
//
// and is bound to an additional-data string (for example the account SID and
// the field name), so a sealed value copied to another row or field does not
// open.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size in bytes of a key: AES-256.
const KeySize = 32

// version is the prefix of every sealed value this package writes.
const version = "v1"

// Errors reported by [Keyring.Open]. None of them carries secret material.
var (
	// ErrMalformed means the value is not a sealed value of a known format.
	ErrMalformed = errors.New("malformed sealed value")
	// ErrUnknownKey means the value was sealed with a key the keyring does
	// not hold.
	ErrUnknownKey = errors.New("sealed with an unknown key")
	// ErrAuthentication means the value was tampered with, or is being
	// opened with other additional data than it was sealed with.
	ErrAuthentication = errors.New("sealed value failed authentication (tampered, or bound to another field)")
)

// ParseKey decodes a key given as standard base64 (padding included) of
// exactly [KeySize] bytes. Surrounding white space, such as the newline at the
// end of a key file, is ignored. Errors never repeat the input.
func ParseKey(b64 string) ([]byte, error) {
	s := strings.TrimSpace(b64)
	if s == "" {
		return nil, errors.New("parse secret key: empty; want standard base64 of 32 random bytes")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var corrupt base64.CorruptInputError
		if errors.As(err, &corrupt) {
			return nil, fmt.Errorf("parse secret key: not standard base64 (bad input at byte %d)", int64(corrupt))
		}
		return nil, errors.New("parse secret key: not standard base64")
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("parse secret key: decodes to %d bytes, want %d", len(key), KeySize)
	}
	return key, nil
}

// GenerateKey returns a new random key as standard base64, the form
// [ParseKey] reads.
func GenerateKey() (string, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate secret key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// KeyID returns the id a key is known by in sealed values: the first 8 hex
// digits of a domain-separated SHA-256 of the key. It reveals nothing usable
// about the key.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("twilioguard seal key id\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// Keyring seals with its primary key and opens with any of its keys. It is
// safe for concurrent use.
type Keyring struct {
	primary string
	aeads   map[string]cipher.AEAD
}

// HasOldKeys reports whether the keyring holds keys besides the primary
// one, that is, whether values sealed with an older key may still exist.
func (k *Keyring) HasOldKeys() bool { return len(k.aeads) > 1 }

// NewKeyring returns a keyring that seals with primary and opens values
// sealed with primary or any of old. Each key must be [KeySize] bytes. A key
// given twice is kept once.
func NewKeyring(primary []byte, old ...[]byte) (*Keyring, error) {
	k := &Keyring{aeads: make(map[string]cipher.AEAD, 1+len(old))}
	keys := append([][]byte{primary}, old...)
	seen := make(map[string][]byte, len(keys))
	for i, key := range keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("new keyring: key %d is %d bytes, want %d", i, len(key), KeySize)
		}
		id := KeyID(key)
		if prev, ok := seen[id]; ok {
			if string(prev) == string(key) {
				continue
			}
			return nil, fmt.Errorf("new keyring: keys with the same id %s", id)
		}
		seen[id] = key
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("new keyring: %w", err)
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("new keyring: %w", err)
		}
		k.aeads[id] = aead
		if i == 0 {
			k.primary = id
		}
	}
	return k, nil
}

// PrimaryID returns the id of the key that seals.
func (k *Keyring) PrimaryID() string { return k.primary }

// Has reports whether the keyring holds the key with this id, so that it
// can open the values [SealedBy] says that key sealed.
func (k *Keyring) Has(id string) bool {
	_, ok := k.aeads[id]
	return ok
}

// Seal encrypts plaintext with the primary key, bound to aad: the result
// opens only with the same aad.
func (k *Keyring) Seal(plaintext, aad string) (string, error) {
	aead := k.aeads[k.primary]
	ct := aead.Seal(nil, nil, []byte(plaintext), additionalData(k.primary, aad))
	return version + "." + k.primary + "." + base64.RawURLEncoding.EncodeToString(ct), nil
}

// Open decrypts a value made by [Keyring.Seal] with the same aad, using the
// key the value names. It fails with [ErrMalformed], [ErrUnknownKey] or
// [ErrAuthentication].
func (k *Keyring) Open(sealed, aad string) (string, error) {
	id, payload, err := split(sealed)
	if err != nil {
		return "", err
	}
	aead, ok := k.aeads[id]
	if !ok {
		return "", fmt.Errorf("open: key id %s: %w", id, ErrUnknownKey)
	}
	ct, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", fmt.Errorf("open: payload is not base64url: %w", ErrMalformed)
	}
	pt, err := aead.Open(nil, nil, ct, additionalData(id, aad))
	if err != nil {
		return "", fmt.Errorf("open: key id %s: %w", id, ErrAuthentication)
	}
	return string(pt), nil
}

// NeedsReseal reports whether sealed was not sealed with the primary key (so
// it should be sealed again before an old key is dropped). It also reports
// true for a value that is not sealed at all.
func (k *Keyring) NeedsReseal(sealed string) bool {
	id, _, err := split(sealed)
	return err != nil || id != k.primary
}

// SealedBy returns the id of the key a sealed value names, or an error
// wrapping [ErrMalformed] when it is not a sealed value. It opens nothing.
func SealedBy(sealed string) (string, error) {
	id, _, err := split(sealed)
	return id, err
}

// split returns the key id and payload of a sealed value.
func split(sealed string) (id, payload string, err error) {
	v, rest, ok := strings.Cut(sealed, ".")
	if !ok || v != version {
		return "", "", fmt.Errorf("open: want prefix %q: %w", version+".", ErrMalformed)
	}
	id, payload, ok = strings.Cut(rest, ".")
	if !ok || id == "" || payload == "" {
		return "", "", fmt.Errorf("open: want %s.<key id>.<payload>: %w", version, ErrMalformed)
	}
	return id, payload, nil
}

// additionalData binds a ciphertext to the format version, the key id and
// the caller's aad.
func additionalData(id, aad string) []byte {
	return []byte(version + "\x00" + id + "\x00" + aad)
}
