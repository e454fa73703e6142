package cdktn

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/phd/kubectl-phd/tests/providerschema/schema"
)

// packageDir is the extracted npm package named by environment variable
// name; the test is skipped when it is unset.
func packageDir(t *testing.T, name, npmPackage string) string {
	t.Helper()
	dir := os.Getenv(name)
	if dir == "" {
		t.Skipf("%s is not set: set it to the extracted %s (the directory holding package.json and lib/)", name, npmPackage)
	}
	if _, err := os.Stat(filepath.Join(dir, "lib")); err != nil {
		t.Fatalf("%s=%s: not an extracted package: %v", name, dir, err)
	}
	return dir
}

// TestRandomMatchesRealSchema converts @cdktn/provider-random (generated from
// hashicorp/random 3.9.1) and compares it with the real schema of
// hashicorp/random 3.9.0, as far as the package doc says the generated code
// can tell.
func TestRandomMatchesRealSchema(t *testing.T) {
	dir := packageDir(t, "PHD_CDKTN_RANDOM", "@cdktn/provider-random 15.0.1")
	schemas := os.Getenv("PHD_PROVIDER_SCHEMAS")
	if schemas == "" {
		schemas = filepath.Join("..", "..", "..", "..", "shared", "provider-schemas")
	}
	realPath := filepath.Join(schemas, "random-3.9.0.json")
	if _, err := os.Stat(realPath); err != nil {
		t.Skipf("no real schema of hashicorp/random 3.9.0 at %s (set PHD_PROVIDER_SCHEMAS to its directory): %v", realPath, err)
	}
	const source = "registry.opentofu.org/hashicorp/random"
	real, err := schema.Load(realPath)
	if err != nil {
		t.Fatal(err)
	}
	result, err := Convert(dir, source)
	if err != nil {
		t.Fatal(err)
	}
	if len(result.Fallbacks) > 0 {
		t.Errorf("fallbacks:\n%s", strings.Join(result.Fallbacks, "\n"))
	}
	want, got := real.ProviderSchemas[source], result.Document.ProviderSchemas[source]

	compareBlock(t, "provider", want.Provider.Block, got.Provider.Block, true)
	// Ephemeral resources are left out: OpenTofu 1.10 does not print them.
	compareSchemas(t, "resource", want.ResourceSchemas, got.ResourceSchemas)
	compareSchemas(t, "data source", want.DataSourceSchemas, got.DataSourceSchemas)
}

func compareSchemas(t *testing.T, kind string, want, got map[string]schema.Schema) {
	t.Helper()
	if w, g := keys(want), keys(got); !reflect.DeepEqual(w, g) {
		t.Errorf("%s types: real %v, converted %v", kind, w, g)
	}
	for name, w := range want {
		if g, ok := got[name]; ok {
			compareBlock(t, kind+" "+name, w.Block, g.Block, false)
		}
	}
}

// compareBlock compares a converted block with the real one: attribute names,
// types and flags; block names, nesting modes and item counts as far as the
// generated code tells them (see the package doc: min_items 0 or 1, max_items
// 1 or none, none at all in the provider configuration). Sensitive,
// deprecated, descriptions and schema versions are not compared.
func compareBlock(t *testing.T, path string, want, got schema.Block, provider bool) {
	t.Helper()
	if w, g := keys(want.Attributes), keys(got.Attributes); !reflect.DeepEqual(w, g) {
		t.Errorf("%s: attributes: real %v, converted %v", path, w, g)
	}
	for name, w := range want.Attributes {
		g, ok := got.Attributes[name]
		if !ok {
			continue
		}
		at := path + "." + name
		if !sameJSON(w.Type, g.Type) || !sameJSON(w.NestedType, g.NestedType) {
			t.Errorf("%s: type: real %s%s, converted %s%s", at, w.Type, w.NestedType, g.Type, g.NestedType)
		}
		if w.Required != g.Required || w.Optional != g.Optional || w.Computed != g.Computed {
			t.Errorf("%s: required/optional/computed: real %v/%v/%v, converted %v/%v/%v",
				at, w.Required, w.Optional, w.Computed, g.Required, g.Optional, g.Computed)
		}
	}
	if w, g := keys(want.BlockTypes), keys(got.BlockTypes); !reflect.DeepEqual(w, g) {
		t.Errorf("%s: blocks: real %v, converted %v", path, w, g)
	}
	for name, w := range want.BlockTypes {
		g, ok := got.BlockTypes[name]
		if !ok {
			continue
		}
		at := path + "." + name
		wantMode := w.NestingMode
		if wantMode == "group" {
			wantMode = "single"
		}
		var wantMin, wantMax int64
		if wantMode == "list" || wantMode == "set" {
			wantMin = min(w.MinItems, 1)
			if w.MaxItems == 1 && !provider {
				wantMax = 1
			}
		}
		if g.NestingMode != wantMode || g.MinItems != wantMin || g.MaxItems != wantMax {
			t.Errorf("%s: nesting %s min %d max %d (real %s min %d max %d), converted %s min %d max %d",
				at, wantMode, wantMin, wantMax, w.NestingMode, w.MinItems, w.MaxItems, g.NestingMode, g.MinItems, g.MaxItems)
		}
		compareBlock(t, at, w.Block, g.Block, provider)
	}
}

func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func keys[V any](m map[string]V) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestAWSFacts converts @cdktn/provider-aws (generated from hashicorp/aws
// 6.66.0) and checks facts read off its generated code (lib/eks-addon,
// lib/s3-bucket, lib/security-group, ...) and the types the infrastructure
// modules use.
func TestAWSFacts(t *testing.T) {
	dir := packageDir(t, "PHD_CDKTN_AWS", "@cdktn/provider-aws 25.7.0")
	const source = "registry.opentofu.org/hashicorp/aws"
	result, err := Convert(dir, source)
	if err != nil {
		t.Fatal(err)
	}
	aws := result.Document.ProviderSchemas[source]

	// Every fallback is one the package doc names: attributes the generator
	// skipped (quicksight definition, wafv2 rule statement) and the wafv2
	// statement it made recursive.
	for _, fallback := range result.Fallbacks {
		if !strings.Contains(fallback, "aws_quicksight_") && !strings.Contains(fallback, "aws_wafv2_") {
			t.Errorf("unexpected fallback: %s", fallback)
		}
	}
	if result.NestedAttributes != 0 {
		t.Errorf("%d nested attributes; hashicorp/aws speaks protocol 5, which has none", result.NestedAttributes)
	}
	if n := len(aws.ResourceSchemas); n < 1700 {
		t.Errorf("%d resources, expected over 1700", n)
	}
	if n := len(aws.DataSourceSchemas); n < 650 {
		t.Errorf("%d data sources, expected over 650", n)
	}

	for _, name := range []string{"aws_availability_zones", "aws_caller_identity", "aws_iam_policy_document", "aws_partition", "aws_region"} {
		if _, ok := aws.DataSourceSchemas[name]; !ok {
			t.Errorf("no data source %s", name)
		}
	}
	for _, name := range []string{
		"aws_cloudwatch_log_group", "aws_db_instance", "aws_db_parameter_group", "aws_db_subnet_group",
		"aws_default_security_group", "aws_docdb_cluster", "aws_docdb_cluster_instance",
		"aws_docdb_cluster_parameter_group", "aws_docdb_subnet_group", "aws_eip", "aws_eks_addon",
		"aws_eks_cluster", "aws_eks_node_group", "aws_flow_log", "aws_iam_role", "aws_iam_role_policy",
		"aws_iam_role_policy_attachment", "aws_internet_gateway", "aws_kms_alias", "aws_kms_key",
		"aws_nat_gateway", "aws_route_table", "aws_route_table_association", "aws_s3_bucket",
		"aws_s3_bucket_lifecycle_configuration", "aws_s3_bucket_ownership_controls",
		"aws_s3_bucket_public_access_block", "aws_s3_bucket_server_side_encryption_configuration",
		"aws_s3_bucket_versioning", "aws_security_group", "aws_subnet", "aws_vpc",
		"aws_vpc_security_group_ingress_rule",
	} {
		if _, ok := aws.ResourceSchemas[name]; !ok {
			t.Errorf("no resource %s", name)
		}
	}

	// The provider configuration (lib/provider).
	provider := aws.Provider.Block
	checkAttribute(t, provider, "provider", "region", `"string"`, "optional")
	checkAttribute(t, provider, "provider", "allowed_account_ids", `["set","string"]`, "optional")
	if _, ok := provider.Attributes["alias"]; ok {
		t.Error("provider: the generator's alias attribute was kept")
	}
	defaultTags := checkBlock(t, provider, "provider", "default_tags", "list", 0, 0)
	checkAttribute(t, defaultTags, "provider.default_tags", "tags", `["map","string"]`, "optional")
	checkBlock(t, provider, "provider", "endpoints", "set", 0, 0)
	checkBlock(t, provider, "provider", "assume_role", "list", 0, 0)

	// aws_eks_addon: required addon_name and cluster_name, computed-only
	// arn, optional+computed addon_version; pod_identity_association a set
	// block (new ...List(this, "pod_identity_association", true)),
	// namespace_config a single-item list block, timeouts a "struct".
	addon := aws.ResourceSchemas["aws_eks_addon"].Block
	checkAttribute(t, addon, "aws_eks_addon", "addon_name", `"string"`, "required")
	checkAttribute(t, addon, "aws_eks_addon", "cluster_name", `"string"`, "required")
	checkAttribute(t, addon, "aws_eks_addon", "arn", `"string"`, "computed")
	checkAttribute(t, addon, "aws_eks_addon", "addon_version", `"string"`, "optional", "computed")
	checkAttribute(t, addon, "aws_eks_addon", "preserve", `"bool"`, "optional")
	checkAttribute(t, addon, "aws_eks_addon", "tags_all", `["map","string"]`, "optional", "computed")
	pod := checkBlock(t, addon, "aws_eks_addon", "pod_identity_association", "set", 0, 0)
	checkAttribute(t, pod, "aws_eks_addon.pod_identity_association", "role_arn", `"string"`, "required")
	namespace := checkBlock(t, addon, "aws_eks_addon", "namespace_config", "list", 0, 1)
	checkAttribute(t, namespace, "aws_eks_addon.namespace_config", "namespace", `"string"`, "optional", "computed")
	timeouts := checkBlock(t, addon, "aws_eks_addon", "timeouts", "single", 0, 0)
	checkAttribute(t, timeouts, "aws_eks_addon.timeouts", "create", `"string"`, "optional")

	// aws_eks_cluster: vpc_config a required single-item list block;
	// identity a computed list of objects (a computed-only struct list:
	// new DataEksClusterIdentityList(this, "identity", false)).
	cluster := aws.ResourceSchemas["aws_eks_cluster"].Block
	vpc := checkBlock(t, cluster, "aws_eks_cluster", "vpc_config", "list", 1, 1)
	checkAttribute(t, vpc, "aws_eks_cluster.vpc_config", "subnet_ids", `["set","string"]`, "required")
	checkAttribute(t, vpc, "aws_eks_cluster.vpc_config", "vpc_id", `"string"`, "computed")
	checkAttribute(t, cluster, "aws_eks_cluster", "identity", `["list",["object",{"oidc":["list",["object",{"issuer":"string"}]]}]]`, "computed")
	checkAttribute(t, cluster, "aws_eks_cluster", "enabled_cluster_log_types", `["set","string"]`, "optional")

	// aws_s3_bucket: nested single-item blocks with required children.
	bucket := aws.ResourceSchemas["aws_s3_bucket"].Block
	checkAttribute(t, bucket, "aws_s3_bucket", "bucket", `"string"`, "optional", "computed")
	checkAttribute(t, bucket, "aws_s3_bucket", "force_destroy", `"bool"`, "optional")
	checkBlock(t, bucket, "aws_s3_bucket", "versioning", "list", 0, 1)
	checkBlock(t, bucket, "aws_s3_bucket", "grant", "set", 0, 0)
	sse := checkBlock(t, bucket, "aws_s3_bucket", "server_side_encryption_configuration", "list", 0, 1)
	rule := checkBlock(t, sse, "aws_s3_bucket.server_side_encryption_configuration", "rule", "list", 1, 1)
	byDefault := checkBlock(t, rule, "aws_s3_bucket.server_side_encryption_configuration.rule", "apply_server_side_encryption_by_default", "list", 1, 1)
	checkAttribute(t, byDefault, "aws_s3_bucket.server_side_encryption_configuration.rule.apply_server_side_encryption_by_default", "sse_algorithm", `"string"`, "required")

	// aws_security_group: ingress and egress are attributes (SDKv2
	// ConfigModeAttr: listMapperHcl(..., false)) of set of object type,
	// optional and computed.
	sg := aws.ResourceSchemas["aws_security_group"].Block
	ingress := checkAttribute(t, sg, "aws_security_group", "ingress", "", "optional", "computed")
	var ingressType []any
	if err := json.Unmarshal(ingress.Type, &ingressType); err != nil || len(ingressType) != 2 || ingressType[0] != "set" {
		t.Errorf("aws_security_group.ingress: type %s, expected a set of objects", ingress.Type)
	} else if object, ok := ingressType[1].([]any); !ok || object[0] != "object" || object[1].(map[string]any)["from_port"] != "number" {
		t.Errorf("aws_security_group.ingress: type %s, expected objects with a number from_port", ingress.Type)
	}
	if _, ok := sg.BlockTypes["ingress"]; ok {
		t.Error("aws_security_group.ingress is a block")
	}

	// aws_iam_policy_document: statement a list block of which principals
	// is a set block.
	document := aws.DataSourceSchemas["aws_iam_policy_document"].Block
	checkAttribute(t, document, "aws_iam_policy_document", "json", `"string"`, "computed")
	statement := checkBlock(t, document, "aws_iam_policy_document", "statement", "list", 0, 0)
	checkAttribute(t, statement, "aws_iam_policy_document.statement", "actions", `["set","string"]`, "optional")
	principals := checkBlock(t, statement, "aws_iam_policy_document.statement", "principals", "set", 0, 0)
	checkAttribute(t, principals, "aws_iam_policy_document.statement.principals", "identifiers", `["set","string"]`, "required")

	// aws_vpc_security_group_ingress_rule (a plugin framework resource).
	rule2 := aws.ResourceSchemas["aws_vpc_security_group_ingress_rule"].Block
	checkAttribute(t, rule2, "aws_vpc_security_group_ingress_rule", "ip_protocol", `"string"`, "required")
	checkAttribute(t, rule2, "aws_vpc_security_group_ingress_rule", "security_group_id", `"string"`, "required")
	checkAttribute(t, rule2, "aws_vpc_security_group_ingress_rule", "from_port", `"number"`, "optional")
	checkAttribute(t, rule2, "aws_vpc_security_group_ingress_rule", "id", `"string"`, "computed")

	// aws_lexv2models_bot_version: a required map of objects
	// (new ...LocaleSpecificationMap(this, "locale_specification")).
	bot := aws.ResourceSchemas["aws_lexv2models_bot_version"].Block
	checkAttribute(t, bot, "aws_lexv2models_bot_version", "locale_specification", `["map",["object",{"source_bot_version":"string"}]]`, "required")

	// The generator's skipped attributes come out dynamic, but in a set
	// block (aws_wafv2_web_acl's rule), where they are left out.
	checkAttribute(t, aws.ResourceSchemas["aws_quicksight_analysis"].Block, "aws_quicksight_analysis", "definition", `"dynamic"`, "optional")
	if _, ok := aws.ResourceSchemas["aws_wafv2_web_acl"].Block.BlockTypes["rule"].Block.Attributes["statement"]; ok {
		t.Error("aws_wafv2_web_acl.rule.statement: a dynamic attribute in a set block")
	}

	// What OpenTofu checks of every schema it loads (configschema
	// InternalValidate), as far as the converter could get it wrong.
	checkValid(t, "provider", aws.Provider.Block, false)
	for _, schemas := range []map[string]schema.Schema{aws.ResourceSchemas, aws.DataSourceSchemas, aws.EphemeralResourceSchemas} {
		for name, s := range schemas {
			checkValid(t, name, s.Block, false)
		}
	}
}

// checkValid checks that every attribute of block has a type and one of the
// flag combinations required, optional, computed or optional+computed, that
// no attribute in a set block (inSet) holds "dynamic", and that every nested
// block has a known nesting mode and item counts only for list and set.
func checkValid(t *testing.T, path string, block schema.Block, inSet bool) {
	t.Helper()
	for name, a := range block.Attributes {
		at := path + "." + name
		if len(a.Type) == 0 && len(a.NestedType) == 0 {
			t.Errorf("%s: no type", at)
		}
		if !(a.Required != (a.Optional || a.Computed)) {
			t.Errorf("%s: flags required %v, optional %v, computed %v", at, a.Required, a.Optional, a.Computed)
		}
		if dynamicInSet(a.Type, inSet) {
			t.Errorf("%s: type %s in a set", at, a.Type)
		}
	}
	for name, b := range block.BlockTypes {
		at := path + "." + name
		switch b.NestingMode {
		case "list", "set":
		case "single", "map":
			if b.MinItems != 0 || b.MaxItems != 0 {
				t.Errorf("%s: %s block with min_items %d max_items %d", at, b.NestingMode, b.MinItems, b.MaxItems)
			}
		default:
			t.Errorf("%s: nesting mode %q", at, b.NestingMode)
		}
		checkValid(t, at, b.Block, inSet || b.NestingMode == "set")
	}
}

// checkAttribute checks that block has attribute name of type typ (JSON; not
// checked when empty) with exactly the flags given, and returns it.
func checkAttribute(t *testing.T, block schema.Block, path, name, typ string, flags ...string) schema.Attribute {
	t.Helper()
	attribute, ok := block.Attributes[name]
	if !ok {
		t.Errorf("%s: no attribute %s", path, name)
		return attribute
	}
	if typ != "" && !sameJSON(json.RawMessage(typ), attribute.Type) {
		t.Errorf("%s.%s: type %s, expected %s", path, name, attribute.Type, typ)
	}
	var got []string
	for flag, set := range map[string]bool{"required": attribute.Required, "optional": attribute.Optional, "computed": attribute.Computed} {
		if set {
			got = append(got, flag)
		}
	}
	sort.Strings(got)
	sort.Strings(flags)
	if !reflect.DeepEqual(got, flags) {
		t.Errorf("%s.%s: flags %v, expected %v", path, name, got, flags)
	}
	return attribute
}

// checkBlock checks that block has a nested block name with the given
// nesting mode and item counts, and returns its block.
func checkBlock(t *testing.T, block schema.Block, path, name, mode string, minItems, maxItems int64) schema.Block {
	t.Helper()
	nested, ok := block.BlockTypes[name]
	if !ok {
		t.Errorf("%s: no block %s", path, name)
		return schema.Block{}
	}
	if nested.NestingMode != mode || nested.MinItems != minItems || nested.MaxItems != maxItems {
		t.Errorf("%s.%s: nesting %s min %d max %d, expected %s min %d max %d",
			path, name, nested.NestingMode, nested.MinItems, nested.MaxItems, mode, minItems, maxItems)
	}
	return nested.Block
}
