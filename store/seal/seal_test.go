package seal_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/twilioguard/twilioguard/store/seal"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, seal.KeySize) }

func TestParseKey(t *testing.T) {
	t.Parallel()
	good := base64.StdEncoding.EncodeToString(key(7))
	tests := []struct {
		name    string
		in      string
		want    []byte
		wantErr string
	}{
		{name: "valid", in: good, want: key(7)},
		{name: "trailing newline", in: good + "\n", want: key(7)},
		{name: "empty", in: "  ", wantErr: "empty"},
		{name: "not base64", in: "secret-material!!secret-material!!secret-mat==", wantErr: "not standard base64"},
		{name: "url alphabet", in: strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))), wantErr: "not standard base64"},
		{name: "raw (unpadded)", in: strings.TrimRight(good, "="), wantErr: "not standard base64"},
		{name: "too short", in: base64.StdEncoding.EncodeToString(key(1)[:16]), wantErr: "decodes to 16 bytes, want 32"},
		{name: "too long", in: base64.StdEncoding.EncodeToString(append(key(1), 1)), wantErr: "decodes to 33 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := seal.ParseKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKey() error = %v; want one containing %q", err, tt.wantErr)
				}
				if in := strings.TrimSpace(tt.in); len(in) > 4 && strings.Contains(err.Error(), in) {
					t.Errorf("ParseKey() error %q repeats the input", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey() error = %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("ParseKey() = %x; want %x", got, tt.want)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	a, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("GenerateKey() returned the same key twice")
	}
	if _, err := seal.ParseKey(a); err != nil {
		t.Errorf("ParseKey(GenerateKey()) error = %v", err)
	}
}

func TestNewKeyring(t *testing.T) {
	t.Parallel()
	if _, err := seal.NewKeyring(key(1)[:31]); err == nil {
		t.Error("NewKeyring(31-byte key) succeeded; want error")
	}
	if _, err := seal.NewKeyring(key(1), key(2)[:5]); err == nil {
		t.Error("NewKeyring(short old key) succeeded; want error")
	}
	k, err := seal.NewKeyring(key(1), key(1))
	if err != nil {
		t.Fatalf("NewKeyring(same key twice) error = %v", err)
	}
	if got, want := k.PrimaryID(), seal.KeyID(key(1)); got != want {
		t.Errorf("PrimaryID() = %q; want %q", got, want)
	}
	if seal.KeyID(key(1)) == seal.KeyID(key(2)) {
		t.Error("KeyID gives two keys the same id")
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	oldKey, newKey, otherKey := key(1), key(2), key(3)
	oldRing, err := seal.NewKeyring(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := seal.NewKeyring(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	other, err := seal.NewKeyring(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	const secret, aad = "tok-0123456789abcdef", "AC00000000000000000000000000000001\x00auth_token"
	sealedOld, err := oldRing.Seal(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	sealedNew, err := rotated.Seal(secret, aad)
	if err != nil {
		t.Fatal(err)
	}

	tamper := func(s string) string {
		b := []byte(s)
		i := len(b) - 3
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	prefix := "v1." + rotated.PrimaryID() + "."

	tests := []struct {
		name    string
		ring    *seal.Keyring
		sealed  string
		aad     string
		wantErr error
	}{
		{name: "same key", ring: oldRing, sealed: sealedOld, aad: aad},
		{name: "rotation: old key still opens", ring: rotated, sealed: sealedOld, aad: aad},
		{name: "rotation: new key opens", ring: rotated, sealed: sealedNew, aad: aad},
		{name: "new value with old keyring", ring: oldRing, sealed: sealedNew, aad: aad, wantErr: seal.ErrUnknownKey},
		{name: "unknown key", ring: other, sealed: sealedOld, aad: aad, wantErr: seal.ErrUnknownKey},
		{name: "wrong aad", ring: rotated, sealed: sealedNew, aad: "AC00000000000000000000000000000002\x00auth_token", wantErr: seal.ErrAuthentication},
		{name: "empty aad", ring: rotated, sealed: sealedNew, aad: "", wantErr: seal.ErrAuthentication},
		{name: "tampered payload", ring: rotated, sealed: tamper(sealedNew), aad: aad, wantErr: seal.ErrAuthentication},
		{name: "truncated payload", ring: rotated, sealed: sealedNew[:len(prefix)+10], aad: aad, wantErr: seal.ErrAuthentication},
		{name: "key id swapped", ring: rotated, sealed: "v1." + oldRing.PrimaryID() + strings.TrimPrefix(sealedNew, "v1."+rotated.PrimaryID()), aad: aad, wantErr: seal.ErrAuthentication},
		{name: "plaintext", ring: rotated, sealed: secret, aad: aad, wantErr: seal.ErrMalformed},
		{name: "empty", ring: rotated, sealed: "", aad: aad, wantErr: seal.ErrMalformed},
		{name: "other version", ring: rotated, sealed: "v2" + strings.TrimPrefix(sealedNew, "v1"), aad: aad, wantErr: seal.ErrMalformed},
		{name: "no payload", ring: rotated, sealed: prefix, aad: aad, wantErr: seal.ErrMalformed},
		{name: "payload not base64url", ring: rotated, sealed: prefix + "a+b/c=", aad: aad, wantErr: seal.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.ring.Open(tt.sealed, tt.aad)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Open() error = %v; want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Open() error %q contains the secret", err)
				}
				if _, payload, ok := strings.Cut(strings.TrimPrefix(tt.sealed, "v1."), "."); ok && len(payload) > 8 && strings.Contains(err.Error(), payload) {
					t.Errorf("Open() error %q repeats the sealed payload", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open() error = %v", err)
			}
			if got != secret {
				t.Errorf("Open() = %q; want %q", got, secret)
			}
		})
	}
}

func TestSealFormat(t *testing.T) {
	t.Parallel()
	k, err := seal.NewKeyring(key(9))
	if err != nil {
		t.Fatal(err)
	}
	const secret = "super-secret-token"
	a, err := k.Seal(secret, "x")
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.Seal(secret, "x")
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("Seal() twice gave the same value; want a fresh nonce each time")
	}
	if want := "v1." + k.PrimaryID() + "."; !strings.HasPrefix(a, want) {
		t.Errorf("Seal() = %q; want prefix %q", a, want)
	}
	if strings.Contains(a, secret) {
		t.Errorf("Seal() = %q contains the plaintext", a)
	}
	empty, err := k.Seal("", "x")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(empty, "x"); err != nil || got != "" {
		t.Errorf("Open(Seal(\"\")) = %q, %v; want \"\", nil", got, err)
	}
}

func TestNeedsReseal(t *testing.T) {
	t.Parallel()
	oldRing, err := seal.NewKeyring(key(1))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := seal.NewKeyring(key(2), key(1))
	if err != nil {
		t.Fatal(err)
	}
	sealedOld, err := oldRing.Seal("s", "a")
	if err != nil {
		t.Fatal(err)
	}
	sealedNew, err := rotated.Seal("s", "a")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		sealed string
		want   bool
	}{
		{name: "old key", sealed: sealedOld, want: true},
		{name: "primary key", sealed: sealedNew, want: false},
		{name: "not sealed", sealed: "plain", want: true},
	}
	for _, tt := range tests {
		if got := rotated.NeedsReseal(tt.sealed); got != tt.want {
			t.Errorf("%s: NeedsReseal() = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestHasOldKeys(t *testing.T) {
	t.Parallel()
	a, b := key(1), key(2)
	tests := []struct {
		name string
		old  [][]byte
		want bool
	}{
		{"primary only", nil, false},
		{"same key twice", [][]byte{a}, false},
		{"rotation", [][]byte{b}, true},
	}
	for _, tt := range tests {
		k, err := seal.NewKeyring(a, tt.old...)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.HasOldKeys(); got != tt.want {
			t.Errorf("%s: HasOldKeys() = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestSealedByAndHas(t *testing.T) {
	t.Parallel()
	rotated, err := seal.NewKeyring(key(2), key(1))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := rotated.Seal("s", "a")
	if err != nil {
		t.Fatal(err)
	}
	id, err := seal.SealedBy(sealed)
	if err != nil || id != seal.KeyID(key(2)) {
		t.Errorf("SealedBy(sealed value) = %q, %v; want %q, nil", id, err, seal.KeyID(key(2)))
	}
	for _, bad := range []string{"", "plain", "v1.", "v1..payload", "v2.abcd1234.payload"} {
		if id, err := seal.SealedBy(bad); !errors.Is(err, seal.ErrMalformed) {
			t.Errorf("SealedBy(%q) = %q, %v; want ErrMalformed", bad, id, err)
		}
	}
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{seal.KeyID(key(1)), true},
		{seal.KeyID(key(2)), true},
		{seal.KeyID(key(3)), false},
		{"", false},
	} {
		if got := rotated.Has(tt.id); got != tt.want {
			t.Errorf("Has(%q) = %v; want %v", tt.id, got, tt.want)
		}
	}
}
