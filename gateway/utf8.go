package gateway

import (
	"context"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

// Requests whose strings are not UTF-8 are answered INVALID_ARGUMENT naming
// the field, on both surfaces. Protobuf refuses such strings while coding a
// message, and gRPC reports any coding failure as INTERNAL: on the REST
// path while the in-process client marshals the request, on the gRPC path
// while the server unmarshals it. So the REST path checks the request
// before it is sent (utf8Client), and the server's codec (utf8Codec) finds
// the field in the wire bytes, lets the request through empty and marked,
// and the first interceptor (utf8Guard) answers the mark.

// invalidUTF8 reports the first string in m that is not UTF-8, as a field
// path in the JSON spelling ("instance.metadata").
func invalidUTF8(m protoreflect.Message) (field string, bad bool) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := fd.JSONName()
		check := func(v protoreflect.Value, kind protoreflect.Kind) {
			switch kind {
			case protoreflect.StringKind:
				if !utf8.ValidString(v.String()) {
					field, bad = name, true
				}
			case protoreflect.MessageKind, protoreflect.GroupKind:
				if f, ok := invalidUTF8(v.Message()); ok {
					field, bad = name+"."+f, true
				}
			}
		}
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				check(k.Value(), fd.MapKey().Kind())
				if !bad {
					check(v, fd.MapValue().Kind())
				}
				if bad {
					field = name // the map, not its entry
				}
				return !bad
			})
		case fd.IsList():
			for i := 0; i < v.List().Len() && !bad; i++ {
				check(v.List().Get(i), fd.Kind())
			}
		default:
			check(v, fd.Kind())
		}
		return !bad
	})
	return field, bad
}

// wireInvalidUTF8 is invalidUTF8 over the wire form b of a message of type
// md, which protobuf will not decode.
func wireInvalidUTF8(b []byte, md protoreflect.MessageDescriptor) (field string, bad bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return "", false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		switch {
		case fd.Kind() == protoreflect.StringKind:
			if !utf8.Valid(v) {
				return fd.JSONName(), true
			}
		case fd.IsMap(): // an entry is a message of a key and a value
			if _, ok := wireInvalidUTF8(v, fd.Message()); ok {
				return fd.JSONName(), true
			}
		case fd.Kind() == protoreflect.MessageKind:
			if f, ok := wireInvalidUTF8(v, fd.Message()); ok {
				return fd.JSONName() + "." + f, true
			}
		}
	}
	return "", false
}

func utf8Error(field string) error {
	return pb.Error(model.Invalid(field, "not valid UTF-8"))
}

// utf8Client checks each request of the in-process REST connection before
// it is marshaled.
func utf8Client() []grpc.DialOption {
	check := func(req any) error {
		if m, ok := req.(proto.Message); ok {
			if field, bad := invalidUTF8(m.ProtoReflect()); bad {
				return utf8Error(field)
			}
		}
		return nil
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if err := check(req); err != nil {
				return err
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, err
			}
			return &utf8ClientStream{ClientStream: s, check: check}, nil
		}),
	}
}

type utf8ClientStream struct {
	grpc.ClientStream
	check func(any) error
}

func (s *utf8ClientStream) SendMsg(m any) error {
	if err := s.check(m); err != nil {
		_ = s.CloseSend()
		return err
	}
	return s.ClientStream.SendMsg(m)
}

// utf8Guard is the server side: its codec marks the requests it could not
// decode for their strings, and its interceptors answer them.
type utf8Guard struct {
	proto encoding.CodecV2
	bad   sync.Map // proto.Message → field
}

func newUTF8Guard() *utf8Guard { return &utf8Guard{proto: encoding.GetCodecV2("proto")} }

// Name implements encoding.CodecV2.
func (g *utf8Guard) Name() string { return g.proto.Name() }

// Marshal implements encoding.CodecV2.
func (g *utf8Guard) Marshal(v any) (mem.BufferSlice, error) { return g.proto.Marshal(v) }

// Unmarshal implements encoding.CodecV2.
func (g *utf8Guard) Unmarshal(data mem.BufferSlice, v any) error {
	err := g.proto.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if err == nil || !ok {
		return err
	}
	b := data.Materialize()
	if field, bad := wireInvalidUTF8(b, m.ProtoReflect().Descriptor()); bad {
		proto.Reset(m)
		g.bad.Store(m, field)
		return nil
	}
	return err
}

// refuse returns the error for a request the codec marked.
func (g *utf8Guard) refuse(req any) error {
	if field, ok := g.bad.LoadAndDelete(req); ok {
		return utf8Error(field.(string))
	}
	return nil
}

func (g *utf8Guard) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := g.refuse(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (g *utf8Guard) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &utf8ServerStream{ServerStream: ss, g: g})
}

type utf8ServerStream struct {
	grpc.ServerStream
	g *utf8Guard
}

func (s *utf8ServerStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.g.refuse(m)
}
