// Package gateway is the Junction server: the gRPC API, its REST mapping
// (grpc-gateway) and raw config endpoints on one address, the watch fan-out
// hub, Prometheus metrics, health and readiness endpoints, and the OpenAPI
// document. It sees only the portable layer (model and the backends
// contract), never which store is underneath.
package gateway
