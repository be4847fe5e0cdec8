package server_test

import (
	"slices"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestReflection lists the services over gRPC server reflection (a
// bidirectional stream, so gRPC over h2c) and resolves one of them.
func TestReflection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	c := grpcreflect.NewClient(h.h2c, h.baseURL, connect.WithGRPC())
	stream := c.NewStream(t.Context())
	defer stream.Close()
	names, err := stream.ListServices()
	if err != nil {
		t.Fatalf("ListServices: %v", err)
	}
	for _, want := range []protoreflect.FullName{"twilioguard.v1.VerifierService", "twilioguard.v1.AccountService"} {
		if !slices.Contains(names, want) {
			t.Errorf("ListServices = %v; missing %s", names, want)
		}
	}
	files, err := stream.FileContainingSymbol("twilioguard.v1.VerifierService")
	if err != nil || len(files) == 0 {
		t.Fatalf("FileContainingSymbol: %v (%d files)", err, len(files))
	}
	if got := files[0].GetName(); got != "twilioguard/v1/verifier.proto" {
		t.Errorf("file = %q; want twilioguard/v1/verifier.proto", got)
	}
}
