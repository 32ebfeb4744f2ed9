// openapi.cpp — see openapi.hpp.
#include "muster/gateway/openapi.hpp"

namespace muster::gateway {

namespace {
constexpr const char* kDocument = R"JSON({
  "openapi": "3.0.3",
  "info": {"title": "muster gateway", "description": "REST surface of muster-gateway (docs/GATEWAY.md). Every route but login, healthz and this document needs 'Authorization: Bearer <JWT>'."},
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
    "schemas": {
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "code": {"type": "string"}}},
      "Login": {"type": "object", "required": ["username", "password"], "properties": {"username": {"type": "string"}, "password": {"type": "string"}}},
      "Token": {"type": "object", "properties": {"token": {"type": "string"}, "expires_at": {"type": "integer"}, "user": {"type": "object", "properties": {"name": {"type": "string"}, "workspace": {"type": "string"}, "role": {"type": "string", "enum": ["read", "call", "admin"]}}}}},
      "Call": {"type": "object", "properties": {"inputs": {"type": "object", "description": "muster values as JSON (bytes as {\"$bytes\": base64}; {\"$file\": \"sha256:...\"} names a finished upload of the caller)"}, "parameters": {"type": "object"}, "timeout_ms": {"type": "integer", "minimum": 0}}},
      "Outputs": {"type": "object", "properties": {"outputs": {"type": "object"}}}
    }
  },
  "security": [{"bearer": []}],
  "paths": {
    "/api/auth/login": {"post": {"summary": "Exchange a user name and password for a JWT", "security": [],
      "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Login"}}}},
      "responses": {"200": {"description": "the token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Token"}}}},
                    "400": {"description": "body is not {username, password}"},
                    "401": {"description": "Invalid username or password"},
                    "403": {"description": "the user belongs to another workspace than this gateway's"},
                    "429": {"description": "too many attempts from this address (Retry-After)"}}}},
    "/api/nodes": {"get": {"summary": "The workspace's nodes (musterd's node list)", "responses": {"200": {"description": "array of nodes"}, "401": {"description": "missing or invalid token"}, "503": {"description": "musterd unreachable"}}}},
    "/api/workers": {"get": {"summary": "The workspace's workers", "responses": {"200": {"description": "array of workers"}, "401": {"description": "missing or invalid token"}, "503": {"description": "musterd unreachable"}}}},
    "/api/status": {"get": {"summary": "Status of musterd and the gateway, for the workspace", "responses": {"200": {"description": "status"}, "401": {"description": "missing or invalid token"}, "503": {"description": "musterd unreachable"}}}},
    "/api/nodes/{name}/call": {"post": {"summary": "Call a node and wait for its outputs (role call or admin)",
      "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
      "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Call"}}}},
      "responses": {"200": {"description": "the outputs", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Outputs"}}}},
                    "400": {"description": "INVALID_REQUEST or BAD_MESSAGE"}, "401": {"description": "missing or invalid token"},
                    "403": {"description": "PERMISSION_DENIED (role read)"}, "404": {"description": "NO_WORKER"},
                    "409": {"description": "CANCELLED"}, "422": {"description": "WORKER_ERROR (raised by the node)"},
                    "429": {"description": "QUEUE_FULL"}, "500": {"description": "INTERNAL"}, "502": {"description": "WORKER_LOST"},
                    "503": {"description": "UNAVAILABLE or SHUTTING_DOWN"}, "504": {"description": "TIMEOUT"}}}},
    "/healthz": {"get": {"summary": "Whether musterd answered the gateway's last query", "security": [],
      "responses": {"200": {"description": "{\"ok\": true, ...}"}, "503": {"description": "{\"ok\": false, ...}"}}}},
    "/api/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.0"}}}}
  }
})JSON";
}  // namespace

Json openapi_document(const std::string& version) {
  Json doc = Json::parse(kDocument);
  doc["info"]["version"] = version;
  return doc;
}

}  // namespace muster::gateway
