// Command terraform-provider-schema is an OpenTofu provider that knows a real
// provider's schema and nothing else. It lets `tofu init`, `tofu validate` and
// `tofu test` with `mock_provider` run offline against the infrastructure
// modules, where the real provider plugins cannot be downloaded.
//
// The binary reads `schema.json` from its own directory: the output of
// `tofu providers schema -json` (format_version 1.0) holding exactly one
// provider. scripts/install-test-tools lays it out, with a copy of this
// binary, as an OpenTofu filesystem mirror ("unpacked" layout,
// <mirror>/<hostname>/<namespace>/<type>/<version>/<os>_<arch>/):
//
//	registry.opentofu.org/hashicorp/aws/6.66.0/linux_amd64/
//	    terraform-provider-aws_v6.66.0   (this program)
//	    schema.json
//
// What it does over the plugin protocol (version 5, as the real AWS,
// DigitalOcean and random providers speak):
//   - GetProviderSchema and GetMetadata: the schema, so OpenTofu checks every
//     resource and data source type, argument name, type, required, optional
//     and computed-only argument, block nesting and count, and attribute
//     reference itself (that is all of `tofu validate` but the provider's own
//     value checks);
//   - the Validate* and PrepareProviderConfig calls: the one check that the
//     provider SDKs (SDKv2 and the plugin framework) make from the schema
//     alone, not OpenTofu: no value for a computed-only (read-only)
//     argument. Everything else passes, because value checks (enums, regular
//     expressions, conflicts between arguments) live in the real provider's
//     code, not in its schema. ConfigureProvider accepts;
//   - UpgradeResourceState: hands the stored state back decoded with the
//     current schema (what `tofu test` needs between run blocks);
//   - every call that would read or change real infrastructure (read, plan,
//     apply, import, move, data sources, ephemeral resources) and every
//     provider function call: an error diagnostic saying that this provider
//     serves only a schema. Under `tofu test` with `mock_provider`, OpenTofu
//     answers those calls itself and never reaches this program.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-go/tfprotov5/tf5server"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/phd/kubectl-phd/tests/providerschema/schema"
)

// schemaFile is the name, next to the binary, of the schema it serves.
const schemaFile = "schema.json"

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "terraform-provider-schema: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	executable, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this program's path: %w", err)
	}
	path := filepath.Join(filepath.Dir(executable), schemaFile)
	document, err := schema.Load(path)
	if err != nil {
		return err
	}
	source, provider, err := document.Only()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	server, err := newServer(source, provider)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return tf5server.Serve(source, func() tfprotov5.ProviderServer { return server })
}

// server answers the plugin protocol from one provider's schema.
type server struct {
	source    string
	provider  *tfprotov5.Schema
	resources map[string]*tfprotov5.Schema
	data      map[string]*tfprotov5.Schema
	ephemeral map[string]*tfprotov5.Schema
}

func newServer(source string, provider *schema.Provider) (*server, error) {
	s := &server{
		source:    source,
		resources: map[string]*tfprotov5.Schema{},
		data:      map[string]*tfprotov5.Schema{},
		ephemeral: map[string]*tfprotov5.Schema{},
	}
	var err error
	if s.provider, err = protocolSchema(provider.Provider); err != nil {
		return nil, fmt.Errorf("provider configuration: %w", err)
	}
	for _, set := range []struct {
		kind string
		from map[string]schema.Schema
		to   map[string]*tfprotov5.Schema
	}{
		{"resource", provider.ResourceSchemas, s.resources},
		{"data source", provider.DataSourceSchemas, s.data},
		{"ephemeral resource", provider.EphemeralResourceSchemas, s.ephemeral},
	} {
		for name, from := range set.from {
			if set.to[name], err = protocolSchema(from); err != nil {
				return nil, fmt.Errorf("%s %s: %w", set.kind, name, err)
			}
		}
	}
	return s, nil
}

// protocolSchema converts one schema from its JSON form (the one `tofu
// providers schema -json` prints) to the plugin protocol's.
func protocolSchema(from schema.Schema) (*tfprotov5.Schema, error) {
	block, err := protocolBlock(from.Block)
	if err != nil {
		return nil, err
	}
	return &tfprotov5.Schema{Version: from.Version, Block: block}, nil
}

func protocolBlock(from schema.Block) (*tfprotov5.SchemaBlock, error) {
	block := &tfprotov5.SchemaBlock{Description: from.Description, Deprecated: from.Deprecated}
	for _, name := range sortedKeys(from.Attributes) {
		attribute := from.Attributes[name]
		if len(attribute.NestedType) > 0 {
			return nil, fmt.Errorf("attribute %s: nested attribute types exist only in plugin protocol 6, which this provider does not speak", name)
		}
		typ, err := tftypes.ParseJSONType(attribute.Type) //nolint:staticcheck // the JSON form is what we have

		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", name, err)
		}
		block.Attributes = append(block.Attributes, &tfprotov5.SchemaAttribute{
			Name:        name,
			Type:        typ,
			Description: attribute.Description,
			Required:    attribute.Required,
			Optional:    attribute.Optional,
			Computed:    attribute.Computed,
			Sensitive:   attribute.Sensitive,
			Deprecated:  attribute.Deprecated,
		})
	}
	for _, name := range sortedKeys(from.BlockTypes) {
		nested := from.BlockTypes[name]
		nesting, err := nestingMode(nested.NestingMode)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", name, err)
		}
		inner, err := protocolBlock(nested.Block)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", name, err)
		}
		block.BlockTypes = append(block.BlockTypes, &tfprotov5.SchemaNestedBlock{
			TypeName: name,
			Block:    inner,
			Nesting:  nesting,
			MinItems: nested.MinItems,
			MaxItems: nested.MaxItems,
		})
	}
	return block, nil
}

func nestingMode(mode string) (tfprotov5.SchemaNestedBlockNestingMode, error) {
	switch mode {
	case "single":
		return tfprotov5.SchemaNestedBlockNestingModeSingle, nil
	case "list":
		return tfprotov5.SchemaNestedBlockNestingModeList, nil
	case "set":
		return tfprotov5.SchemaNestedBlockNestingModeSet, nil
	case "map":
		return tfprotov5.SchemaNestedBlockNestingModeMap, nil
	case "group":
		return tfprotov5.SchemaNestedBlockNestingModeGroup, nil
	}
	return tfprotov5.SchemaNestedBlockNestingModeInvalid, fmt.Errorf("unknown nesting mode %q", mode)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

// refusal is the diagnostic of every call this provider cannot answer.
func (s *server) refusal(call string) []*tfprotov5.Diagnostic {
	return []*tfprotov5.Diagnostic{{
		Severity: tfprotov5.DiagnosticSeverityError,
		Summary:  "This provider serves only a schema",
		Detail: fmt.Sprintf("%s is a stand-in for %s that knows its schema and nothing else (tests/providerschema): "+
			"it validates configuration but cannot %s. Use the real provider, or mock_provider in a tofu test.", os.Args[0], s.source, call),
	}}
}

func (s *server) GetMetadata(context.Context, *tfprotov5.GetMetadataRequest) (*tfprotov5.GetMetadataResponse, error) {
	response := &tfprotov5.GetMetadataResponse{ServerCapabilities: capabilities()}
	for _, name := range sortedKeys(s.resources) {
		response.Resources = append(response.Resources, tfprotov5.ResourceMetadata{TypeName: name})
	}
	for _, name := range sortedKeys(s.data) {
		response.DataSources = append(response.DataSources, tfprotov5.DataSourceMetadata{TypeName: name})
	}
	for _, name := range sortedKeys(s.ephemeral) {
		response.EphemeralResources = append(response.EphemeralResources, tfprotov5.EphemeralResourceMetadata{TypeName: name})
	}
	return response, nil
}

func capabilities() *tfprotov5.ServerCapabilities {
	return &tfprotov5.ServerCapabilities{GetProviderSchemaOptional: false, PlanDestroy: true}
}

func (s *server) GetProviderSchema(context.Context, *tfprotov5.GetProviderSchemaRequest) (*tfprotov5.GetProviderSchemaResponse, error) {
	return &tfprotov5.GetProviderSchemaResponse{
		ServerCapabilities:       capabilities(),
		Provider:                 s.provider,
		ResourceSchemas:          s.resources,
		DataSourceSchemas:        s.data,
		EphemeralResourceSchemas: s.ephemeral,
		Functions:                map[string]*tfprotov5.Function{},
	}, nil
}

func (s *server) GetResourceIdentitySchemas(context.Context, *tfprotov5.GetResourceIdentitySchemasRequest) (*tfprotov5.GetResourceIdentitySchemasResponse, error) {
	return &tfprotov5.GetResourceIdentitySchemasResponse{}, nil
}

func (s *server) PrepareProviderConfig(_ context.Context, request *tfprotov5.PrepareProviderConfigRequest) (*tfprotov5.PrepareProviderConfigResponse, error) {
	return &tfprotov5.PrepareProviderConfigResponse{
		PreparedConfig: request.Config,
		Diagnostics:    readOnlyArguments(s.provider, request.Config),
	}, nil
}

// readOnlyArguments reports every computed-only attribute that config sets,
// as the provider SDKs do in their validate calls (SDKv2's schemaMap.validate,
// the plugin framework's "Invalid Configuration for Read-Only Attribute").
func readOnlyArguments(schema *tfprotov5.Schema, config *tfprotov5.DynamicValue) []*tfprotov5.Diagnostic {
	if schema == nil || config == nil {
		return nil
	}
	value, err := config.Unmarshal(schema.ValueType())
	if err != nil {
		return []*tfprotov5.Diagnostic{{
			Severity: tfprotov5.DiagnosticSeverityError,
			Summary:  "Configuration does not match the schema",
			Detail:   err.Error(),
		}}
	}
	var diagnostics []*tfprotov5.Diagnostic
	walkReadOnly(schema.Block, value, tftypes.NewAttributePath(), &diagnostics)
	return diagnostics
}

func walkReadOnly(block *tfprotov5.SchemaBlock, value tftypes.Value, path *tftypes.AttributePath, diagnostics *[]*tfprotov5.Diagnostic) {
	if block == nil || value.IsNull() || !value.IsKnown() {
		return
	}
	var fields map[string]tftypes.Value
	if err := value.As(&fields); err != nil {
		return
	}
	for _, attribute := range block.Attributes {
		field, ok := fields[attribute.Name]
		if !ok || field.IsNull() || attribute.Required || attribute.Optional || !attribute.Computed {
			continue
		}
		*diagnostics = append(*diagnostics, &tfprotov5.Diagnostic{
			Severity:  tfprotov5.DiagnosticSeverityError,
			Summary:   "Value for a read-only attribute",
			Detail:    fmt.Sprintf("%q is computed by the provider and cannot be set in configuration; remove it.", attribute.Name),
			Attribute: path.WithAttributeName(attribute.Name),
		})
	}
	for _, nested := range block.BlockTypes {
		field, ok := fields[nested.TypeName]
		if !ok || field.IsNull() || !field.IsKnown() {
			continue
		}
		here := path.WithAttributeName(nested.TypeName)
		switch nested.Nesting {
		case tfprotov5.SchemaNestedBlockNestingModeSingle, tfprotov5.SchemaNestedBlockNestingModeGroup:
			walkReadOnly(nested.Block, field, here, diagnostics)
		case tfprotov5.SchemaNestedBlockNestingModeList:
			var items []tftypes.Value
			if field.As(&items) == nil {
				for index, item := range items {
					walkReadOnly(nested.Block, item, here.WithElementKeyInt(index), diagnostics)
				}
			}
		case tfprotov5.SchemaNestedBlockNestingModeSet:
			var items []tftypes.Value
			if field.As(&items) == nil {
				for _, item := range items {
					walkReadOnly(nested.Block, item, here.WithElementKeyValue(item), diagnostics)
				}
			}
		case tfprotov5.SchemaNestedBlockNestingModeMap:
			var items map[string]tftypes.Value
			if field.As(&items) == nil {
				for _, key := range sortedKeys(items) {
					walkReadOnly(nested.Block, items[key], here.WithElementKeyString(key), diagnostics)
				}
			}
		}
	}
}

func (s *server) ConfigureProvider(context.Context, *tfprotov5.ConfigureProviderRequest) (*tfprotov5.ConfigureProviderResponse, error) {
	return &tfprotov5.ConfigureProviderResponse{}, nil
}

func (s *server) StopProvider(context.Context, *tfprotov5.StopProviderRequest) (*tfprotov5.StopProviderResponse, error) {
	return &tfprotov5.StopProviderResponse{}, nil
}

func (s *server) ValidateResourceTypeConfig(_ context.Context, request *tfprotov5.ValidateResourceTypeConfigRequest) (*tfprotov5.ValidateResourceTypeConfigResponse, error) {
	return &tfprotov5.ValidateResourceTypeConfigResponse{
		Diagnostics: readOnlyArguments(s.resources[request.TypeName], request.Config),
	}, nil
}

func (s *server) UpgradeResourceState(_ context.Context, request *tfprotov5.UpgradeResourceStateRequest) (*tfprotov5.UpgradeResourceStateResponse, error) {
	resource, ok := s.resources[request.TypeName]
	if !ok {
		return nil, fmt.Errorf("unknown resource type %q", request.TypeName)
	}
	if request.RawState == nil {
		return nil, errors.New("no state to upgrade")
	}
	typ := resource.ValueType()
	value, err := request.RawState.UnmarshalWithOpts(typ, tfprotov5.UnmarshalOpts{
		// State written by a newer provider may hold attributes this schema lacks.
		ValueFromJSONOpts: tftypes.ValueFromJSONOpts{IgnoreUndefinedAttributes: true},
	})
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", request.TypeName, err)
	}
	state, err := tfprotov5.NewDynamicValue(typ, value)
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", request.TypeName, err)
	}
	return &tfprotov5.UpgradeResourceStateResponse{UpgradedState: &state}, nil
}

func (s *server) ReadResource(context.Context, *tfprotov5.ReadResourceRequest) (*tfprotov5.ReadResourceResponse, error) {
	return &tfprotov5.ReadResourceResponse{Diagnostics: s.refusal("read a resource")}, nil
}

func (s *server) PlanResourceChange(context.Context, *tfprotov5.PlanResourceChangeRequest) (*tfprotov5.PlanResourceChangeResponse, error) {
	return &tfprotov5.PlanResourceChangeResponse{Diagnostics: s.refusal("plan a change")}, nil
}

func (s *server) ApplyResourceChange(context.Context, *tfprotov5.ApplyResourceChangeRequest) (*tfprotov5.ApplyResourceChangeResponse, error) {
	return &tfprotov5.ApplyResourceChangeResponse{Diagnostics: s.refusal("apply a change")}, nil
}

func (s *server) ImportResourceState(context.Context, *tfprotov5.ImportResourceStateRequest) (*tfprotov5.ImportResourceStateResponse, error) {
	return &tfprotov5.ImportResourceStateResponse{Diagnostics: s.refusal("import a resource")}, nil
}

func (s *server) MoveResourceState(context.Context, *tfprotov5.MoveResourceStateRequest) (*tfprotov5.MoveResourceStateResponse, error) {
	return &tfprotov5.MoveResourceStateResponse{Diagnostics: s.refusal("move a resource")}, nil
}

func (s *server) UpgradeResourceIdentity(context.Context, *tfprotov5.UpgradeResourceIdentityRequest) (*tfprotov5.UpgradeResourceIdentityResponse, error) {
	return &tfprotov5.UpgradeResourceIdentityResponse{Diagnostics: s.refusal("upgrade a resource identity")}, nil
}

func (s *server) ValidateDataSourceConfig(_ context.Context, request *tfprotov5.ValidateDataSourceConfigRequest) (*tfprotov5.ValidateDataSourceConfigResponse, error) {
	return &tfprotov5.ValidateDataSourceConfigResponse{
		Diagnostics: readOnlyArguments(s.data[request.TypeName], request.Config),
	}, nil
}

func (s *server) ReadDataSource(context.Context, *tfprotov5.ReadDataSourceRequest) (*tfprotov5.ReadDataSourceResponse, error) {
	return &tfprotov5.ReadDataSourceResponse{Diagnostics: s.refusal("read a data source")}, nil
}

func (s *server) CallFunction(context.Context, *tfprotov5.CallFunctionRequest) (*tfprotov5.CallFunctionResponse, error) {
	return &tfprotov5.CallFunctionResponse{Error: &tfprotov5.FunctionError{Text: "this provider serves only a schema and has no functions"}}, nil
}

func (s *server) GetFunctions(context.Context, *tfprotov5.GetFunctionsRequest) (*tfprotov5.GetFunctionsResponse, error) {
	return &tfprotov5.GetFunctionsResponse{Functions: map[string]*tfprotov5.Function{}}, nil
}

func (s *server) ValidateEphemeralResourceConfig(_ context.Context, request *tfprotov5.ValidateEphemeralResourceConfigRequest) (*tfprotov5.ValidateEphemeralResourceConfigResponse, error) {
	return &tfprotov5.ValidateEphemeralResourceConfigResponse{
		Diagnostics: readOnlyArguments(s.ephemeral[request.TypeName], request.Config),
	}, nil
}

func (s *server) OpenEphemeralResource(context.Context, *tfprotov5.OpenEphemeralResourceRequest) (*tfprotov5.OpenEphemeralResourceResponse, error) {
	return &tfprotov5.OpenEphemeralResourceResponse{Diagnostics: s.refusal("open an ephemeral resource")}, nil
}

func (s *server) RenewEphemeralResource(context.Context, *tfprotov5.RenewEphemeralResourceRequest) (*tfprotov5.RenewEphemeralResourceResponse, error) {
	return &tfprotov5.RenewEphemeralResourceResponse{Diagnostics: s.refusal("renew an ephemeral resource")}, nil
}

func (s *server) CloseEphemeralResource(context.Context, *tfprotov5.CloseEphemeralResourceRequest) (*tfprotov5.CloseEphemeralResourceResponse, error) {
	return &tfprotov5.CloseEphemeralResourceResponse{Diagnostics: s.refusal("close an ephemeral resource")}, nil
}
