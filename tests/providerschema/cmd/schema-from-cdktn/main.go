// Command schema-from-cdktn rebuilds an OpenTofu provider schema (the JSON of
// `tofu providers schema -json`, format_version 1.0) from a CDK Terrain
// prebuilt provider package (@cdktn/provider-*), extracted:
//
//	schema-from-cdktn <package-dir> <provider-source> > schema.json
//
// e.g. schema-from-cdktn ./package registry.opentofu.org/hashicorp/aws. The
// schema goes to stdout; a summary (counts, and every attribute whose type
// the generated code does not tell, which is written "dynamic") to stderr.
// See package cdktn for the rules and the known differences from the real
// schema.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/phd/kubectl-phd/tests/providerschema/cdktn"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "schema-from-cdktn: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: schema-from-cdktn <package-dir> <provider-source, e.g. registry.opentofu.org/hashicorp/aws>")
	}
	result, err := cdktn.Convert(args[0], args[1])
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	if err := json.NewEncoder(out).Encode(result.Document); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return err
	}
	for _, fallback := range result.Fallbacks {
		fmt.Fprintf(os.Stderr, "fallback: %s\n", fallback)
	}
	provider := result.Document.ProviderSchemas[args[1]]
	fmt.Fprintf(os.Stderr, "schema-from-cdktn: %s: %d resources, %d data sources, %d ephemeral resources, %d fallbacks, %d nested attributes\n",
		args[1], len(provider.ResourceSchemas), len(provider.DataSourceSchemas), len(provider.EphemeralResourceSchemas),
		len(result.Fallbacks), result.NestedAttributes)
	return nil
}
