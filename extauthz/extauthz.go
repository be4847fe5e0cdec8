package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	twilioguardv1 "github.com/twilioguard/twilioguard/gen/twilioguard/v1"
	"github.com/twilioguard/twilioguard/internal/bound"
)

const (
	// ServicePath is the path prefix of the Authorization service, for
	// mounting [Server.Handler] on a mux.
	ServicePath = "/envoy.service.auth.v3.Authorization/"
	// CheckProcedure is the full path of the Check RPC.
	CheckProcedure = authv3.Authorization_Check_FullMethodName

	// defaultReadMaxBytes bounds the size of a CheckRequest read by the
	// connect handler: Envoy's body limit plus headers, with room to spare.
	defaultReadMaxBytes = 4 << 20
)

// Verifier verifies one webhook request. The generated
// twilioguardv1connect.VerifierServiceClient and the in-process server both
// satisfy it. A bad signature is a response with valid=false; an error means
// the verifier could not decide (connect.CodeInvalidArgument for a malformed
// request, anything else for an outage).
type Verifier interface {
	VerifyWebhook(ctx context.Context, req *twilioguardv1.VerifyWebhookRequest) (*twilioguardv1.VerifyWebhookResponse, error)
}

// Server answers Envoy's ext_authz Check calls by verifying the Twilio
// signature of the checked request. It serves the same Check through a
// connect handler ([Server.Handler]) and a native grpc-go server
// ([Server.RegisterGRPC]).
type Server struct {
	v           Verifier
	log         *slog.Logger
	metrics     *metrics
	routes      *routeCache
	handlerOpts []connect.HandlerOption

	valid *bound.Cache[string, *authv3.CheckResponse] // of valid verdicts in enforce mode, by account SID
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// An Option configures a [Server].
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	log         *slog.Logger
	reg         prometheus.Registerer
	handlerOpts []connect.HandlerOption
}

// WithLogger sets the logger for one line per check: Debug when verified,
// Info when denied (with the reason and diagnosis the client never sees),
// Error when the check could not be decided. Caller-supplied values are cut
// to a bounded length. The default discards logs; nil keeps it.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.log = l
		}
	})
}

// WithRegisterer registers the server's Prometheus metrics
// (twilioguard_extauthz_checks_total and
// twilioguard_extauthz_check_duration_seconds) on reg. By default they are
// not registered anywhere.
func WithRegisterer(reg prometheus.Registerer) Option {
	return optionFunc(func(c *config) { c.reg = reg })
}

// WithHandlerOptions adds connect handler options to [Server.Handler], after
// the default connect.WithReadMaxBytes of 4 MiB (which they may override).
func WithHandlerOptions(opts ...connect.HandlerOption) Option {
	return optionFunc(func(c *config) { c.handlerOpts = append(c.handlerOpts, opts...) })
}

// NewServer returns a Server that verifies with v. It fails when v is nil, an
// option is nil, or the metrics cannot be registered on the registerer given
// by [WithRegisterer].
func NewServer(v Verifier, opts ...Option) (*Server, error) {
	if v == nil {
		return nil, errors.New("extauthz: nil Verifier")
	}
	c := config{log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("extauthz: nil Option")
		}
		o.apply(&c)
	}
	m, err := newMetrics(c.reg)
	if err != nil {
		return nil, fmt.Errorf("extauthz: register metrics: %w", err)
	}
	s := &Server{
		v:           v,
		log:         c.log,
		metrics:     m,
		routes:      newRouteCache(),
		valid:       bound.NewCache[string, *authv3.CheckResponse](maxCachedResponses),
		handlerOpts: append([]connect.HandlerOption{connect.WithReadMaxBytes(defaultReadMaxBytes)}, c.handlerOpts...),
	}
	return s, nil
}

// Check answers one ext_authz check. Every verdict is a CheckResponse: OK with
// the verified headers (and [HeaderDuplicate] on a duplicate), or denied
// with 403 (bad signature), 400 (malformed request), 413 (partial body) or
// 409 (a duplicate on a route that rejects them). On a route in shadow mode every request is
// allowed and the verdict is reported in [HeaderShadow]. Check returns a gRPC
// status error only when it cannot decide (the verifier is unavailable, the
// route's context extensions are wrong, Envoy sent no body), so that Envoy
// applies failure_mode_allow and status_on_error.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	r, err := s.routes.parse(req.GetAttributes().GetContextExtensions())
	if err != nil {
		v := verdict{result: resultError, route: r}
		s.report(ctx, v, translation{}, err, start)
		return nil, status.Error(codes.FailedPrecondition, "twilioguard: misconfigured route: "+err.Error())
	}

	t, res, err := verifyRequest(req, r)
	var v verdict
	code := codes.FailedPrecondition
	if err != nil {
		v = verdict{result: res, route: r}
	} else {
		resp, verr := s.v.VerifyWebhook(ctx, t.req)
		switch {
		case verr == nil:
			v = fromVerifyResponse(r, resp)
		case connect.CodeOf(verr) == connect.CodeInvalidArgument:
			v, err = verdict{result: resultMalformed, route: r}, verr
		default:
			v, err = verdict{result: resultError, route: r}, verr
			code = errorCode(ctx, verr)
		}
	}
	s.report(ctx, v, t, err, start)
	if v.result == resultError && !r.shadow {
		return nil, status.Error(code, "twilioguard: cannot verify the webhook")
	}
	forged := forgedHeaders(req.GetAttributes().GetRequest().GetHttp())
	if v.result == resultValid && !v.duplicate && !r.shadow && len(forged) == 0 {
		return s.validResponse(v), nil
	}
	resp := checkResponse(v)
	if ok := resp.GetOkResponse(); ok != nil && len(forged) > 0 {
		ok.HeadersToRemove = append(slices.Clone(ok.HeadersToRemove), forged...)
	}
	return resp, nil
}

// maxCachedResponses bounds Server.valid.
const maxCachedResponses = 4096

// validResponse returns checkResponse(v) for a valid verdict in enforce
// mode, which depends only on the account: the answer to most checks is
// built once per account and shared (marshalling only reads it).
func (s *Server) validResponse(v verdict) *authv3.CheckResponse {
	if resp, ok := s.valid.Get(v.accountSID); ok {
		return resp
	}
	resp := checkResponse(v)
	s.valid.Add(v.accountSID, resp)
	return resp
}

// errorCode picks the gRPC code returned to Envoy for a verifier error.
func errorCode(ctx context.Context, err error) codes.Code {
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case ctx.Err() != nil:
		return codes.Canceled
	}
	if c := connect.CodeOf(err); c != connect.CodeUnknown {
		return codes.Code(c)
	}
	return codes.Unavailable
}

// report logs and counts one check.
func (s *Server) report(ctx context.Context, v verdict, t translation, err error, start time.Time) {
	d := time.Since(start)
	s.metrics.observe(v, d)

	level, msg := slog.LevelDebug, "webhook verified"
	switch {
	case v.result == resultError:
		level, msg = slog.LevelError, "webhook check failed"
		if v.route.shadow {
			msg = "webhook check failed (shadow mode: allowed)"
		}
	case v.result != resultValid && v.route.shadow:
		level, msg = slog.LevelInfo, "webhook would be denied (shadow mode: allowed)"
	case v.result != resultValid:
		level, msg = slog.LevelInfo, "webhook denied"
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs,
		slog.String("procedure", CheckProcedure),
		slog.String("result", string(v.result)),
		slog.String("mode", v.route.mode()),
		slog.Duration("latency", d),
	)
	for _, a := range []struct{ k, v string }{
		{"route", v.route.name}, {"reason", v.reason}, {"hint", v.hint},
		{"account_sid", v.accountSID}, {"path", t.path}, {"request_id", t.requestID},
	} {
		if a.v != "" {
			attrs = append(attrs, slog.String(a.k, bound.Text(a.v, bound.TextBytes)))
		}
	}
	if v.duplicate {
		attrs = append(attrs, slog.Bool("duplicate", true), slog.Time("first_seen", v.firstSeen))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", bound.Text(err.Error(), bound.TextBytes)))
	}
	s.log.LogAttrs(ctx, level, msg, attrs...)
}

// Handler returns the path prefix and the connect handler serving Check over
// gRPC, gRPC-Web and Connect, for mounting on the service's mux (which must
// speak h2c for Envoy's gRPC client).
func (s *Server) Handler() (string, http.Handler) {
	check := connect.NewUnaryHandlerSimple(CheckProcedure, s.checkConnect, s.handlerOpts...)
	return ServicePath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != CheckProcedure {
			http.NotFound(w, r)
			return
		}
		check.ServeHTTP(w, r)
	})
}

// checkConnect is Check with gRPC status errors turned into connect errors.
func (s *Server) checkConnect(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	resp, err := s.Check(ctx, req)
	if err != nil {
		st := status.Convert(err)
		return nil, connect.NewError(connect.Code(st.Code()), errors.New(st.Message()))
	}
	return resp, nil
}

// RegisterGRPC registers Check on a native grpc-go server, for serving
// ext_authz on a port of its own.
func (s *Server) RegisterGRPC(g grpc.ServiceRegistrar) {
	authv3.RegisterAuthorizationServer(g, s)
}
