terraform {
  required_version = ">= 1.10.0"

  required_providers {
{%- if cookiecutter.provider == 'digitalocean' %}
    digitalocean = {
      source  = "digitalocean/digitalocean"
      version = "~> 2.0"
    }
{%- else %}
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
{%- endif %}
  }

{%- if cookiecutter.provider == 'digitalocean' %}

  # State in a Spaces bucket, which must exist before `tofu init`. Credentials
  # come from the environment only: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
  # hold a Spaces access key.
  backend "s3" {
    bucket = "tfstate-phd-{{ cookiecutter.cluster_slug }}-{{ cookiecutter.environment }}"
    key    = "infrastructure/terraform.tfstate"
    region = "us-east-1"
    endpoints = {
      s3 = "https://{{ cookiecutter.region }}.digitaloceanspaces.com"
    }
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_region_validation      = true
    skip_s3_checksum            = true
  }
}

# Credentials from the environment only: DIGITALOCEAN_TOKEN, and
# SPACES_ACCESS_KEY_ID with SPACES_SECRET_ACCESS_KEY for buckets.
provider "digitalocean" {}
{%- else %}

  # State in an S3 bucket, which must exist before `tofu init`, with a lock
  # file beside it. Credentials come from the environment only (AWS_PROFILE,
  # or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or SSO).
  backend "s3" {
    bucket       = "tfstate-phd-{{ cookiecutter.cluster_slug }}-{{ cookiecutter.environment }}"
    key          = "infrastructure/terraform.tfstate"
    region       = "{{ cookiecutter.region }}"
    encrypt      = true
    use_lockfile = true
  }
}

# Credentials from the environment only, as for the backend.
provider "aws" {
  region = local.context.region

  default_tags {
    tags = {
      "managed-by"  = "kubectl-phd"
      "phd-cluster" = "phd-${local.context.cluster_slug}"
      "environment" = local.context.environment
    }
  }
}
{%- endif %}
