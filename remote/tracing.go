package remote

import (
	"context"
	"errors"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Spans (Config.TracerProvider). Every call and one-way send gets a span on
// the caller's side (kind Client, Producer for a send) whose context travels
// in the request (Request.Trace), and one on the host (kind Server,
// Consumer for a send), child of the caller's, from the request's arrival
// to its reply; the method's ctx carries the host's span, so the calls a
// method makes belong to the same trace. Attribute keys follow the
// OpenTelemetry RPC conventions where they fit.
//
// Without a provider the Endpoint holds a nil tracer and each of these
// steps is one nil check: no span, no ctx value, no trace field on the
// wire.

// instrumentation is the name of the tracer the Endpoint asks its provider
// for.
const instrumentation = "github.com/troupe-dev/troupe"

// Attribute keys of troupe's spans.
const (
	AttrRPCSystem  = attribute.Key("rpc.system")  // always "troupe"
	AttrRPCService = attribute.Key("rpc.service") // the actor type
	AttrRPCMethod  = attribute.Key("rpc.method")  // the method
	AttrActor      = attribute.Key("troupe.actor.id")
	AttrNode       = attribute.Key("troupe.node.id")      // the node that recorded the span
	AttrPeerNode   = attribute.Key("troupe.peer.node.id") // the host (caller side) or the caller (host side)
	AttrOutcome    = attribute.Key("troupe.outcome")      // "ok", or the error's Code.Label
	AttrErrorType  = attribute.Key("error.type")          // the Code.Label of a failure
)

var systemAttr = AttrRPCSystem.String("troupe")

// The span kinds as start options, made once: an option made per call is
// an allocation per call.
var (
	kindClient   = trace.WithSpanKind(trace.SpanKindClient)
	kindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	kindServer   = trace.WithSpanKind(trace.SpanKindServer)
	kindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
)

// spanName is the name of the spans of a call: "Type/Method" (the RPC
// conventions' "service/method"), or the method alone when the type is not
// known.
func spanName(typ, method string) string {
	if typ == "" {
		return method
	}
	return typ + "/" + method
}

// startClientSpan starts the caller's span of a call (or, oneWay, a send)
// to ref's actor and returns the ctx that carries it.
func (e *Endpoint) startClientSpan(ctx context.Context, ref Ref, method string, oneWay bool) context.Context {
	kind := kindClient
	if oneWay {
		kind = kindProducer
	}
	// The attributes are set once the sampler kept the span: a span
	// sampled out costs no attribute slice.
	ctx, span := e.tracer.Start(ctx, spanName(ref.Type, method), kind)
	if span.IsRecording() {
		span.SetAttributes(systemAttr, AttrRPCService.String(ref.Type), AttrRPCMethod.String(method),
			AttrActor.String(ref.ID), AttrNode.String(e.self))
	}
	return ctx
}

// traceContextOf is the wire form of sc; nil when sc is not valid.
func traceContextOf(sc trace.SpanContext) *TraceContext {
	if !sc.IsValid() {
		return nil
	}
	return &TraceContext{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Flags: byte(sc.TraceFlags())}
}

// spanContext is the remote parent t names; not valid when t is zero.
func (t *TraceContext) spanContext() trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: t.TraceID, SpanID: t.SpanID,
		TraceFlags: trace.TraceFlags(t.Flags), Remote: true})
}

// startServerSpan starts the host's span of job j, child of the caller's
// span the request names, and makes j's ctx carry it (finish ends it).
func (e *Endpoint) startServerSpan(j *job) {
	q := &j.req
	kind := kindServer
	if q.Flags&FlagOneWay != 0 {
		kind = kindConsumer
	}
	parent := j.ctx
	if q.Trace != nil {
		parent = trace.ContextWithRemoteSpanContext(parent, q.Trace.spanContext())
	}
	ctx, span := e.tracer.Start(parent, q.Method, kind)
	if span.IsRecording() {
		span.SetAttributes(systemAttr, AttrRPCMethod.String(q.Method), AttrActor.String(q.Target),
			AttrNode.String(e.self), AttrPeerNode.String(j.from))
	}
	if jc := j.jc(); jc != nil {
		// Keep the cheap derivation of ctxs from the job's ctx (see
		// jobCtx.AfterFunc) under the span's ctx value.
		ctx = &spanCtx{Context: ctx, jc: jc}
	}
	j.ctx = ctx
}

// spanCtx is a job's ctx with its span as a value, still offering its
// jobCtx's AfterFunc to the context package.
type spanCtx struct {
	context.Context
	jc *jobCtx
}

func (c *spanCtx) AfterFunc(f func()) func() bool { return c.jc.AfterFunc(f) }

// endSpan records the outcome of the call err ended (nil: success) on span
// and ends it. typ, when not empty, names the actor type (the host learns
// it only once it checked ownership).
func endSpan(span trace.Span, typ, method string, err error) {
	if !span.IsRecording() { // sampled out: nothing to name or annotate
		span.End()
		return
	}
	if typ != "" {
		span.SetName(spanName(typ, method))
		span.SetAttributes(AttrRPCService.String(typ))
	}
	code := codeOf(err)
	label := code.Label()
	span.SetAttributes(AttrOutcome.String(label))
	if code != CodeOK {
		span.SetAttributes(AttrErrorType.String(label))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// codeOf classifies the error a call ended with: CodeOK for nil, the
// *Error's code, the codes of ctx errors, else CodeInternal.
func codeOf(err error) Code {
	if err == nil {
		return CodeOK // before errCode's variable, which escapes
	}
	return errCode(err)
}

func errCode(err error) Code {
	var re *Error
	switch {
	case errors.As(err, &re):
		return re.Code
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadline
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	}
	return CodeInternal
}

// Label is the code as a metric label or attribute value: "ok", or its
// name with underscores ("not_owner", "deadline_exceeded", ...).
func (c Code) Label() string {
	if int(c) < len(codeLabels) {
		return codeLabels[c]
	}
	return strings.ReplaceAll(c.String(), " ", "_")
}

var codeLabels = func() (l [len(codeNames)]string) {
	for i, n := range codeNames {
		l[i] = strings.ReplaceAll(n, " ", "_")
	}
	return l
}()
