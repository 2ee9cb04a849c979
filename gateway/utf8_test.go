package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

// A string that is not UTF-8 anywhere in a request is INVALID_ARGUMENT
// naming its field, never INTERNAL: in a path segment, a query value or a
// JSON string over REST, and in any field of a gRPC request from a client
// that does not check (Go's protobuf refuses to send one, others do not).
func TestInvalidUTF8IsInvalidArgument(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		name, method, path, body string
		field                    string
	}{
		{"config dataId", "GET", cfgPath + "%ff%fe", "", "dataId"},
		{"config put", "PUT", cfgPath + "%ff", "x", "dataId"},
		{"config delete", "DELETE", "/v1/namespaces/public/groups/%c3%28/configs/a", "", "group"},
		{"config watch", "GET", cfgPath + "%ff:watch", "", "dataId"},
		{"service list", "GET", svcPath + "%ff/instances", "", "service"},
		{"service watch", "GET", svcPath + "%ff/instances:watch", "", "service"},
		{"query value", "GET", "/v1/namespaces/public/services?group=%ff", "", "group"},
		{"session id", "DELETE", "/v1/sessions/%ed%a0%80", "", "id"}, // an encoded surrogate half
		{"namespace", "GET", "/v1/namespaces/%80/configs", "", "namespace"},
		{"JSON string", "POST", svcPath + "s/instances", "{\"ip\":\"10.0.0.1\",\"port\":80,\"metadata\":{\"k\":\"\xff\"}}", "body"},
		{"JSON key", "POST", svcPath + "s/instances", "{\"ip\":\"10.0.0.1\",\"port\":80,\"metadata\":{\"\xff\":\"v\"}}", "body"},
	} {
		r := e.do(t, tc.method, tc.path, tc.body)
		code, field := r.err()
		if r.status != 400 || code != "INVALID_ARGUMENT" || field != tc.field {
			t.Errorf("%s: %d %s, want 400 INVALID_ARGUMENT naming %q", tc.name, r.status, r.body, tc.field)
		}
	}

	// gRPC: the request is marshaled with a placeholder that is then
	// overwritten on the wire with bytes that are not UTF-8.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const mark = "\x01\x02"
	for _, tc := range []struct {
		name, method string
		req          proto.Message
		stream       bool
		field        string
	}{
		{"GetConfig", "/junction.v1.ConfigService/GetConfig",
			&pb.GetConfigRequest{Namespace: "public", Group: "DEFAULT_GROUP", DataId: mark}, false, "dataId"},
		{"RegisterInstance metadata", "/junction.v1.RegistryService/RegisterInstance",
			&pb.RegisterInstanceRequest{Namespace: "public", Group: "DEFAULT_GROUP", Service: "s", Ip: "10.0.0.1", Port: 80,
				Metadata: map[string]string{"k": mark}}, false, "metadata"},
		{"RegisterInstance check", "/junction.v1.RegistryService/RegisterInstance",
			&pb.RegisterInstanceRequest{Namespace: "public", Group: "DEFAULT_GROUP", Service: "s", Ip: "10.0.0.1", Port: 80,
				Check: &pb.HealthCheck{Kind: "tcp", Target: mark}}, false, "check.target"},
		{"WatchConfig", "/junction.v1.ConfigService/WatchConfig",
			&pb.WatchConfigRequest{Namespace: "public", Group: "DEFAULT_GROUP", DataId: mark}, true, "dataId"},
	} {
		wire, err := proto.Marshal(tc.req)
		if err != nil || bytes.Count(wire, []byte(mark)) != 1 {
			t.Fatalf("%s: marshal: %v", tc.name, err)
		}
		wire = bytes.Replace(wire, []byte(mark), []byte{0xff, 0xfe}, 1)
		var got error
		if tc.stream {
			s, err := e.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, tc.method, grpc.ForceCodecV2(rawCodec{}))
			if err == nil {
				if err = s.SendMsg(wire); err == nil {
					_ = s.CloseSend()
					var reply []byte
					err = s.RecvMsg(&reply)
				}
			}
			got = err
		} else {
			var reply []byte
			got = e.conn.Invoke(ctx, tc.method, wire, &reply, grpc.ForceCodecV2(rawCodec{}))
		}
		if status.Code(got) != codes.InvalidArgument {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", tc.name, got)
			continue
		}
		if err := pb.Error(got); !errors.Is(err, model.ErrInvalidArgument) || model.FieldOf(err) != tc.field {
			t.Errorf("%s: %v naming %q, want %q", tc.name, err, model.FieldOf(err), tc.field)
		}
	}

	// Nothing was stored, and the server still serves.
	if r := e.do(t, "GET", "/v1/namespaces/public/services", ""); strings.Contains(r.body, `"service":"s"`) {
		t.Fatalf("a rejected registration was stored: %s", r.body)
	}
	if r := e.do(t, "GET", "/readyz", ""); r.status != 200 {
		t.Fatalf("readyz after hostile requests: %d %s", r.status, r.body)
	}
}

// rawCodec sends and receives pre-encoded messages ([]byte).
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, err := io.ReadAll(data.Reader())
	*v.(*[]byte) = b
	return err
}
