# Plan-level facts of this module, checked offline with mocked providers:
# `tofu test` (plugins/kubectl-phd/tests/infrastructure_modules.rs runs it
# against stand-ins that serve the providers' schemas; see
# docs/infrastructure.md, "What is validated").

mock_provider "random" {}

mock_provider "aws" {
  # What the real data sources answer in an account, where names depend on it.
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_region" {
    defaults = {
      region = "us-east-1"
    }
  }
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["us-east-1a", "us-east-1b", "us-east-1c"]
    }
  }
  # A created cluster has its certificate authority; the mock's default is none.
  mock_resource "aws_eks_cluster" {
    defaults = {
      certificate_authority = [{ data = "" }]
    }
  }
}

# The longest names the variables accept, so that every name built from them
# is checked against the limits below.
variables {
  name         = "phd-abcdefghijklmnopqrstuvwxyz0123"
  environment  = "abcdefghijklmnopqrs1"
  region       = "us-east-1"
  domain       = "openedx.example.com"
  state_bucket = "tfstate-phd-abcdefghijklmnopqrstuvwxyz0123-abcdefghijklmnopqrs1"
}

run "outputs_holding_secrets_are_sensitive" {
  command = plan

  assert {
    condition     = issensitive(output.kubeconfig)
    error_message = "The kubeconfig output must be sensitive."
  }

  assert {
    condition     = issensitive(output.mysql_root_password)
    error_message = "The MySQL root password output must be sensitive."
  }

  assert {
    condition     = issensitive(output.mongodb_root_password)
    error_message = "The DocumentDB root password output must be sensitive."
  }
}

run "names_fit_the_limits_of_their_services" {
  command = plan

  # IAM role names: at most 64 characters.
  assert {
    condition = alltrue([for name in [
      aws_iam_role.eks_cluster.name,
      aws_iam_role.nodes.name,
      aws_iam_role.ebs_csi.name,
      aws_iam_role.rds_monitoring.name,
      aws_iam_role.cluster_autoscaler.name,
      aws_iam_role.flow_logs.name,
    ] : length(name) <= 64])
    error_message = "An IAM role's name is longer than 64 characters."
  }

  # S3 bucket names: at most 63 characters.
  assert {
    condition     = length(aws_s3_bucket.backups.bucket) <= 63
    error_message = "The backups bucket's name is longer than 63 characters."
  }

  # RDS and DocumentDB identifiers and EKS node group names: at most 63
  # characters; EKS cluster names: at most 100.
  assert {
    condition = alltrue([for name in concat([
      aws_db_instance.mysql.identifier,
      aws_docdb_cluster.documentdb.cluster_identifier,
      aws_eks_node_group.workers.node_group_name,
    ], aws_docdb_cluster_instance.documentdb[*].identifier) : length(name) <= 63])
    error_message = "A database identifier or node group name is longer than 63 characters."
  }

  assert {
    condition     = length(aws_eks_cluster.cluster.name) <= 100
    error_message = "The EKS cluster's name is longer than 100 characters."
  }
}
