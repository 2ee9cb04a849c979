package junctionv1

import _ "embed"

// OpenAPI is the OpenAPI (Swagger 2.0) document of the REST API, generated
// from junction.proto and junction.yaml.
//
//go:embed openapi.swagger.json
var OpenAPI []byte
