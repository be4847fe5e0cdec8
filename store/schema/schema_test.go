package schema_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/twilioguard/twilioguard/store/schema"
)

func files(names ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for _, n := range names {
		fsys["migrations/"+n] = &fstest.MapFile{Data: []byte("-- " + n)}
	}
	// Files elsewhere are not migrations.
	fsys["0099_elsewhere.sql"] = &fstest.MapFile{Data: []byte("-- elsewhere")}
	return fsys
}

func TestLoad(t *testing.T) {
	t.Parallel()
	ms, err := schema.Load(files("0010_ten.sql", "0002_two.sql", "0001_one.sql", "README.md"), "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name)
		if m.SQL != "-- "+m.Name {
			t.Errorf("%s: SQL = %q; want the file's content", m.Name, m.SQL)
		}
	}
	if want := "0001_one.sql 0002_two.sql 0010_ten.sql"; strings.Join(got, " ") != want {
		t.Errorf("Load order = %v; want %s", got, want)
	}
	if ms[2].Version != 10 {
		t.Errorf("Version of 0010_ten.sql = %d; want 10", ms[2].Version)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"none", files("README.md"), "no *.sql"},
		{"no number", files("accounts.sql"), "positive number"},
		{"zero", files("0000_zero.sql"), "positive number"},
		{"negative", files("-1_neg.sql"), "positive number"},
		{"same version", files("0001_a.sql", "01_b.sql"), "same version"},
	}
	for _, tt := range tests {
		if _, err := schema.Load(tt.fsys, "migrations"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Load error = %v; want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestPending(t *testing.T) {
	t.Parallel()
	all, err := schema.Load(files("0001_a.sql", "0002_b.sql", "0005_c.sql"), "migrations")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		current int
		want    string
	}{
		{0, "0001_a.sql 0002_b.sql 0005_c.sql"},
		{1, "0002_b.sql 0005_c.sql"},
		{3, "0005_c.sql"},
		{5, ""},
	}
	for _, tt := range tests {
		ms, err := schema.Pending(all, tt.current)
		if err != nil {
			t.Fatalf("Pending(%d) error = %v", tt.current, err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Name)
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("Pending(%d) = %v; want %q", tt.current, got, tt.want)
		}
	}
	if _, err := schema.Pending(all, 6); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Pending(6) error = %v; want one saying the database is newer", err)
	}
}
