# An EKS cluster in its own VPC (public subnets for load balancers and the
# NAT gateway, private subnets for nodes and databases), RDS MySQL and
# DocumentDB reachable only from the cluster, an encrypted and versioned S3
# bucket for backups, and one customer-managed KMS key for all of it.

# The zones are named, not "whatever is available", so that a zone AWS adds
# later cannot move subnets on the next plan.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = [for suffix in var.availability_zones : "${data.aws_region.current.region}${suffix}"]
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  prefix = "${var.name}-${var.environment}"
  # Names with tight limits (IAM roles 64, RDS and DocumentDB identifiers 63,
  # S3 buckets 63) use this: the prefix, or for a long one its first 33
  # characters and a hash of the whole, so that two long names stay apart.
  short_prefix = length(local.prefix) <= 40 ? local.prefix : "${trimsuffix(substr(local.prefix, 0, 33), "-")}-${substr(sha1(local.prefix), 0, 6)}"
  zones        = sort(data.aws_availability_zones.selected.names)
  account_id   = data.aws_caller_identity.current.account_id
  partition    = data.aws_partition.current.partition
  tags = {
    "managed-by"  = "kubectl-phd"
    "phd-cluster" = var.name
    "environment" = var.environment
    "domain"      = var.domain
  }
}

resource "aws_kms_key" "cluster" {
  description             = "Encrypts the ${local.prefix} cluster's secrets, databases, logs and backups"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "cluster" {
  name          = "alias/${local.prefix}"
  target_key_id = aws_kms_key.cluster.key_id
}

data "aws_iam_policy_document" "kms" {
  # The account administers the key through IAM, as AWS's default key policy does.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts this cluster's log groups with the key.
  statement {
    sid       = "CloudWatchLogsEncrypts"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${data.aws_region.current.region}:${local.account_id}:log-group:/phd/${local.prefix}/*"]
    }
  }
}
