# Plan-level facts of this module, checked offline with a mocked provider:
# `tofu test` (plugins/kubectl-phd/tests/infrastructure_modules.rs runs it
# against a stand-in that serves the real provider's schema; see
# docs/infrastructure.md, "What is validated").

mock_provider "digitalocean" {
  # A created cluster has one kubeconfig; the mock's default is none.
  mock_resource "digitalocean_kubernetes_cluster" {
    defaults = {
      kube_config = [{
        raw_config             = "apiVersion: v1"
        host                   = "https://cluster.example"
        cluster_ca_certificate = ""
        client_certificate     = ""
        client_key             = ""
        token                  = ""
        expires_at             = ""
      }]
    }
  }
}

# The longest names the variables accept, so that every name built from them
# is checked against the limits below.
variables {
  name         = "phd-abcdefghijklmnopqrstuvwxyz0123"
  environment  = "abcdefghijklmnopqrs1"
  region       = "nyc3"
  domain       = "openedx.example.com"
  state_bucket = "tfstate-phd-abcdefghijklmnopqrstuvwxyz0123-abcdefghijklmnopqrs1"
}

run "outputs_holding_secrets_are_sensitive" {
  command = plan

  assert {
    condition     = issensitive(output.kubeconfig)
    error_message = "The kubeconfig output holds the cluster's credentials and must be sensitive."
  }

  assert {
    condition     = issensitive(output.mysql_root_password)
    error_message = "The MySQL root password output must be sensitive."
  }
}

run "names_fit_the_limits_of_their_services" {
  command = plan

  # Spaces buckets follow S3's naming rules: at most 63 characters.
  assert {
    condition     = length(digitalocean_spaces_bucket.backups.name) <= 63
    error_message = "The backups bucket's name is longer than 63 characters."
  }

  # Kubernetes clusters, node pools and database clusters become DNS labels
  # (host names, node names): at most 63 characters.
  assert {
    condition = alltrue([for name in [
      digitalocean_kubernetes_cluster.cluster.name,
      digitalocean_kubernetes_cluster.cluster.node_pool[0].name,
      digitalocean_database_cluster.mysql.name,
      digitalocean_database_cluster.mongodb.name,
    ] : length(name) <= 63])
    error_message = "A cluster, node pool or database name is longer than 63 characters."
  }
}
