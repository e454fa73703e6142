# A DOKS cluster in its own VPC, managed MySQL and MongoDB reachable only
# from that cluster, and a private, versioned Spaces bucket for backups.

locals {
  prefix = "${var.name}-${var.environment}"
  tags   = ["managed-by-kubectl-phd", var.name, var.environment]
}

resource "digitalocean_vpc" "cluster" {
  name        = local.prefix
  region      = var.region
  ip_range    = var.vpc_ip_range
  description = "Network of the ${var.name} cluster (${var.environment}, ${var.domain}), managed by kubectl-phd"
}

data "digitalocean_kubernetes_versions" "selected" {
  version_prefix = "${var.kubernetes_version}."
}

resource "digitalocean_kubernetes_cluster" "cluster" {
  name          = local.prefix
  region        = var.region
  version       = data.digitalocean_kubernetes_versions.selected.latest_version
  vpc_uuid      = digitalocean_vpc.cluster.id
  auto_upgrade  = true
  surge_upgrade = true
  tags          = local.tags

  maintenance_policy {
    day        = "sunday"
    start_time = "04:00"
  }

  node_pool {
    name       = "${local.prefix}-workers"
    size       = var.node_size
    auto_scale = true
    min_nodes  = var.node_count_min
    max_nodes  = var.node_count_max
    tags       = local.tags
  }
}

resource "digitalocean_database_cluster" "mysql" {
  name                 = "${local.prefix}-mysql"
  engine               = "mysql"
  version              = var.mysql_version
  size                 = var.database_size
  region               = var.region
  node_count           = var.database_node_count
  private_network_uuid = digitalocean_vpc.cluster.id
  tags                 = local.tags

  maintenance_window {
    day  = "sunday"
    hour = "03:00:00"
  }
}

# Open edX's migrations create tables without a primary key, which
# DigitalOcean's managed MySQL refuses while sql_require_primary_key is on
# (its default); openedx-k8s-harmony's DigitalOcean module turns it off too.
resource "digitalocean_database_mysql_config" "openedx" {
  cluster_id              = digitalocean_database_cluster.mysql.id
  sql_require_primary_key = false
}

resource "digitalocean_database_cluster" "mongodb" {
  name                 = "${local.prefix}-mongodb"
  engine               = "mongodb"
  version              = var.mongodb_version
  size                 = var.database_size
  region               = var.region
  node_count           = var.database_node_count == 2 ? 3 : var.database_node_count
  private_network_uuid = digitalocean_vpc.cluster.id
  tags                 = local.tags

  maintenance_window {
    day  = "sunday"
    hour = "03:00:00"
  }
}

# Only the Kubernetes cluster may connect; without a rule a managed database
# accepts connections from anywhere.
resource "digitalocean_database_firewall" "mysql" {
  cluster_id = digitalocean_database_cluster.mysql.id

  rule {
    type  = "k8s"
    value = digitalocean_kubernetes_cluster.cluster.id
  }
}

resource "digitalocean_database_firewall" "mongodb" {
  cluster_id = digitalocean_database_cluster.mongodb.id

  rule {
    type  = "k8s"
    value = digitalocean_kubernetes_cluster.cluster.id
  }
}

resource "digitalocean_spaces_bucket" "backups" {
  name   = "${local.prefix}-backups"
  region = var.region
  acl    = "private"

  versioning {
    enabled = true
  }

  lifecycle_rule {
    id      = "expire-old-versions"
    enabled = true

    noncurrent_version_expiration {
      days = var.backup_retention_days
    }
  }
}

# The bucket of the stack's own state: created by hand for the backend, then
# imported by the root module so that it is versioned and private from the
# first apply on. It must outlive everything else here.
resource "digitalocean_spaces_bucket" "state" {
  count  = var.state_bucket == null ? 0 : 1
  name   = var.state_bucket
  region = var.region
  acl    = "private"

  versioning {
    enabled = true
  }

  lifecycle_rule {
    id      = "expire-old-state-versions"
    enabled = true

    noncurrent_version_expiration {
      days = 90
    }
  }

  lifecycle {
    prevent_destroy = true
  }
}
