// Package cdktn rebuilds an OpenTofu provider schema (package schema: the
// JSON of `tofu providers schema -json`, format_version 1.0) from a CDK
// Terrain prebuilt provider package (@cdktn/provider-*, e.g.
// @cdktn/provider-aws 25.7.0, generated from hashicorp/aws 6.66.0), for when
// the real provider's schema is not at hand but its bindings are.
//
// # Where the schema is in the package
//
// The cdktn provider generator (a fork of cdktf's provider-generator) turns
// the provider's schema into one lib/<dir>/ per resource, data source,
// ephemeral resource and the provider configuration, with index.js (and,
// for the largest, index-structs/*.js) and index.d.ts. Convert reads:
//
//   - the top class of index.js, which extends cdktn.TerraformResource,
//     TerraformDataSource, TerraformEphemeralResource or TerraformProvider
//     and names its type in `static tfResourceType = "aws_eks_addon"`;
//   - before every field of that class and of each struct's
//     FooOutputReference class, the comment the generator prints from the
//     schema, `// name - computed: X, optional: Y, required: Z`
//     (attributes-emitter): the attribute's flags, exact, optional+computed
//     included (the setters and reset methods, which tell only assignable
//     and required, are checked against them);
//   - synthesizeHclAttributes() and each struct's fooToHclTerraform(struct):
//     for every assignable field, `isBlock` (true for every struct-typed
//     field), `type` ("simple", "list", "set", "map", "struct") and
//     `storageClassType` ("string", "stringList", "numberMap", "FooList",
//     ...), and in `value` whether a list or set of structs is a block:
//     cdktn.listMapperHcl(fooToHclTerraform, isBlock);
//   - the getters and stored classes of computed-only fields, which have no
//     attrs entry: `this.getNumberAttribute('x')`,
//     `cdktn.Fn.tolist(this.getListAttribute('x'))` (a set of strings),
//     `new cdktn.StringMap(this, "x")`, `new FooList(this, "x", wrapsSet)`;
//   - from index.d.ts, only which "struct" fields are blocks: a block's doc
//     comment is "<name> block" (resource-parser attributeForBlockType), an
//     attribute's its own description; and, for the provider's structs,
//     which have no classes, optional (`readonly x?:`) or required.
//
// The rule for each part is on the function that applies it (shapeOf,
// nestedBlock, nestedType, primitiveType).
//
// # Known differences from the real schema
//
// Checked against the real schema of hashicorp/random 3.9.0 (the package's
// test): names, types, required, optional and computed all match. What the
// generated code does not carry, and so the rebuilt schema lacks or guesses:
//
//   - sensitive, deprecated (attributes and blocks), write-only: never set.
//   - Descriptions: none (description and description_kind left out).
//   - Schema versions: always 0.
//   - min_items: 1 for a required list or set block, else unset; the real
//     minimum may be higher. max_items: 1 for a block the generator made
//     single-item (max_items 1), else unset; a real maximum above 1 is lost.
//     The provider configuration's blocks never get max_items (the
//     generator makes no single-item types for the provider: hashicorp/aws's
//     default_tags, ignore_tags and assume_role_with_web_identity are
//     max_items 1 for real).
//   - The provider configuration's nested fields have no flag comments: they
//     are optional or required as the interface declares, never computed.
//     The generator's extra provider attribute "alias" (a meta-argument) is
//     left out.
//   - Nesting mode "group" comes out "single".
//   - Inside a collection, a set comes out a list: storageClassType names
//     both "List" ("stringListList" is written list of list of string, also
//     for a set of lists or sets); the outermost collection is exact.
//   - The cty type "dynamic" reaches the generated code as a map of any; it
//     is written back "dynamic" (so a real map of dynamic would be too).
//   - Attributes the generator skips (storageClassType "any":
//     aws_quicksight_{analysis,dashboard,template}.definition,
//     aws_wafv2_{web_acl,rule_group}.rule.statement, blocks for real) and
//     computed-only fields whose getter tells no type
//     (interpolationForAttribute, e.g. a computed list of bool) become
//     attributes of type "dynamic"; Result.Fallbacks lists each. In a set
//     block, where OpenTofu rejects "dynamic" (the aws_wafv2 rule
//     statements), they are left out instead.
//   - Where the generator made a struct recursive (its loop detection,
//     e.g. aws_wafv2_web_acl_rule statement.and_statement.statement), the
//     recursive block is left out (Result.Fallbacks lists it).
//   - The generator drops one of two attributes whose names camel-case
//     alike (resource-parser deduplicateAttributesWithSameName).
//   - Protocol 6 nested attributes (nested_type) and object-typed attributes
//     look alike; see nestedType for how they are told apart (exactly for a
//     protocol 5 provider such as hashicorp/aws or random, which has no
//     nested attributes).
//   - Ephemeral resources are written under ephemeral_resource_schemas,
//     which `tofu providers schema -json` of OpenTofu 1.10 does not print.
package cdktn
