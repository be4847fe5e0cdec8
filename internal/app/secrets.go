package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/twilioguard/twilioguard/store/seal"
)

// File names inside the data directory.
const (
	AdminTokenFile = "admin-token"
	SecretKeyFile  = "secret-key"
	SQLiteFile     = "twilioguard.db"
)

// MinAdminTokenBytes is the shortest admin token accepted. Generated tokens
// are 64 hex digits.
const MinAdminTokenBytes = 16

// LoadAdminToken finds the admin token: the file when one is named, else
// token (the TWILIOGUARD_ADMIN_TOKEN value), else <dataDir>/admin-token,
// which is created with a random token (mode 0600) when create is set. A
// token shorter than [MinAdminTokenBytes] is refused.
func LoadAdminToken(file, token, dataDir string, create bool) (string, error) {
	var err error
	switch {
	case file != "":
		token, err = readSecretFile(file, "--admin-token-file")
	case strings.TrimSpace(token) != "":
		token = strings.TrimSpace(token)
	default:
		path := filepath.Join(dataDir, AdminTokenFile)
		token, err = readSecretFile(path, "admin token")
		if errors.Is(err, os.ErrNotExist) {
			if !create {
				return "", fmt.Errorf("no admin token: set TWILIOGUARD_ADMIN_TOKEN or --admin-token-file, or point --data-dir at the server's data directory (%s not found)", path)
			}
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			token = hex.EncodeToString(b)
			err = writeSecretFile(path, token)
		}
	}
	if err != nil {
		return "", err
	}
	if len(token) < MinAdminTokenBytes {
		return "", fmt.Errorf("admin token: %d characters; use at least %d (e.g. `head -c24 /dev/urandom | base64`)", len(token), MinAdminTokenBytes)
	}
	return token, nil
}

// loadKeyring builds the keyring that encrypts secrets at rest: the key
// file, else keys (the TWILIOGUARD_SECRET_KEY value) — first word the
// current key, further ones older keys — else <dataDir>/secret-key, which is
// generated when dbPath names a database file that does not exist yet
// (dbPath empty: no default key).
func loadKeyring(file, keys, dataDir, dbPath string) (*seal.Keyring, error) {
	var words []string
	switch {
	case file != "":
		s, err := readSecretFile(file, "--secret-key-file")
		if err != nil {
			return nil, err
		}
		words = strings.Fields(s)
	case strings.TrimSpace(keys) != "":
		words = strings.Fields(keys)
	case dbPath != "":
		path := filepath.Join(dataDir, SecretKeyFile)
		s, err := readSecretFile(path, "secret key")
		if errors.Is(err, os.ErrNotExist) {
			// A new key only for a new database: over existing data it
			// would make every stored secret unreadable.
			if _, serr := os.Stat(dbPath); serr == nil {
				return nil, fmt.Errorf("secret key %s is missing but the database %s exists: restore the key file, or set TWILIOGUARD_SECRET_KEY or --secret-key-file to the key it was sealed with", path, dbPath)
			}
			if s, err = seal.GenerateKey(); err == nil {
				err = writeSecretFile(path, s)
			}
		}
		if err != nil {
			return nil, err
		}
		words = strings.Fields(s)
	default:
		return nil, errors.New("no secret key: set TWILIOGUARD_SECRET_KEY or --secret-key-file (32 random bytes, standard base64; e.g. `head -c32 /dev/urandom | base64`)")
	}
	if len(words) == 0 {
		return nil, errors.New("secret key is empty")
	}
	parsed := make([][]byte, len(words))
	for i, w := range words {
		k, err := seal.ParseKey(w)
		if err != nil {
			return nil, fmt.Errorf("secret key %d: %w", i+1, err)
		}
		parsed[i] = k
	}
	return seal.NewKeyring(parsed[0], parsed[1:]...)
}

func readSecretFile(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", what, path)
	}
	return s, nil
}

func writeSecretFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(content + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
