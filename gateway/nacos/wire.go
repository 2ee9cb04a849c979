package nacos

import (
	"encoding/json"

	nacosgrpc "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"

	anypb "github.com/golang/protobuf/ptypes/any"
)

// The Nacos 2.x wire format: each gRPC Payload carries a JSON body whose
// type its metadata names. These are the fields Junction reads and
// writes, as the Nacos clients spell them.

// request is what every request body has.
type request struct {
	RequestID string `json:"requestId"`
}

// response is what every response body has.
type response struct {
	ResultCode int    `json:"resultCode"`
	ErrorCode  int    `json:"errorCode"`
	Success    bool   `json:"success"`
	Message    string `json:"message,omitempty"`
	RequestID  string `json:"requestId,omitempty"`
}

func ok() response { return response{ResultCode: 200, Success: true} }

// Result and error codes of the protocol.
const (
	codeFail           = 500
	errNotFound        = 300 // a config that does not exist
	errConflict        = 409 // a casMd5 that no longer holds
	errForbidden       = 403 // Junction's own namespace, or what the token may not do
	errUnauthenticated = 401
	errRateLimited     = 429
	errUnregistered    = 301 // the connection is not set up: the client reconnects
	errNoHandler       = 302
	errInvalid         = 400
	errServer          = 500
	errNotImplemented  = 501
)

func fail(code int, msg string) response {
	return response{ResultCode: codeFail, ErrorCode: code, Message: msg}
}

type namingRequest struct {
	request
	Namespace   string `json:"namespace"`
	ServiceName string `json:"serviceName"`
	GroupName   string `json:"groupName"`
}

// instance is a Nacos instance.
type instance struct {
	InstanceID  string            `json:"instanceId"`
	IP          string            `json:"ip"`
	Port        uint64            `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	ClusterName string            `json:"clusterName"`
	ServiceName string            `json:"serviceName"`
	Metadata    map[string]string `json:"metadata"`
}

// serviceInfo is a service's instances as a client caches them.
type serviceInfo struct {
	Name                     string     `json:"name"`
	GroupName                string     `json:"groupName"`
	Clusters                 string     `json:"clusters"`
	CacheMillis              uint64     `json:"cacheMillis"`
	Hosts                    []instance `json:"hosts"`
	LastRefTime              uint64     `json:"lastRefTime"`
	Checksum                 string     `json:"checksum"`
	AllIPs                   bool       `json:"allIPs"`
	ReachProtectionThreshold bool       `json:"reachProtectionThreshold"`
	Valid                    bool       `json:"valid"`
}

type instanceRequest struct {
	namingRequest
	Type     string   `json:"type"`
	Instance instance `json:"instance"`
}

type batchInstanceRequest struct {
	namingRequest
	Type      string     `json:"type"`
	Instances []instance `json:"instances"`
}

type subscribeRequest struct {
	namingRequest
	Subscribe bool   `json:"subscribe"`
	Clusters  string `json:"clusters"`
}

type serviceQueryRequest struct {
	namingRequest
	Cluster     string `json:"cluster"`
	HealthyOnly bool   `json:"healthyOnly"`
}

type serviceListRequest struct {
	namingRequest
	PageNo   int `json:"pageNo"`
	PageSize int `json:"pageSize"`
}

type configRequest struct {
	request
	Group  string `json:"group"`
	DataID string `json:"dataId"`
	Tenant string `json:"tenant"`
	// Tag asks a query for the item's tagged (gray) content.
	Tag string `json:"tag,omitempty"`
}

type configPublishRequest struct {
	configRequest
	Content     string            `json:"content"`
	CasMd5      string            `json:"casMd5"`
	AdditionMap map[string]string `json:"additionMap"`
}

type configListenContext struct {
	Group  string `json:"group"`
	MD5    string `json:"md5"`
	DataID string `json:"dataId"`
	Tenant string `json:"tenant"`
}

type configBatchListenRequest struct {
	request
	Listen   bool                  `json:"listen"`
	Contexts []configListenContext `json:"configListenContexts"`
}

type configContext struct {
	Group  string `json:"group"`
	DataID string `json:"dataId"`
	Tenant string `json:"tenant"`
}

// payload wraps a body as the protocol does: its type in the metadata,
// its JSON in the Any's value.
func payload(typ string, body any) (*nacosgrpc.Payload, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return &nacosgrpc.Payload{Metadata: &nacosgrpc.Metadata{Type: typ}, Body: &anypb.Any{Value: raw}}, nil
}
