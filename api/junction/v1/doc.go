// Package junctionv1 is Junction's wire API: the generated protobuf, gRPC and
// grpc-gateway code for junction.proto, its OpenAPI document, and the table
// that maps the portable errors of package model to gRPC codes and HTTP
// statuses and back.
package junctionv1
