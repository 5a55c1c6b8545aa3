// Build-only module: pins KEDA's operator and metrics API server used by the
// e2e tier (e2e/keda.sh). KEDA's own go.mod carries a replace directive, so
// `go install ...@version` refuses it; a module that requires KEDA and repeats
// that one replace builds both commands from the published release.
module agentfleet.io/e2e/keda

go 1.26.0

tool (
	github.com/kedacore/keda/v2/cmd/adapter
	github.com/kedacore/keda/v2/cmd/operator
)

require github.com/kedacore/keda/v2 v2.21.0

replace github.com/nexus-rpc/nexus-proto-annotations v0.1.0 => github.com/nexus-rpc/nexus-proto-annotations v0.1.1-0.20260629224316-835bd8d49cb4
