# The cluster and its shared services, from the {{ cookiecutter.provider }} module of
# kubectl-phd {{ cookiecutter.phd_version }}. To upgrade, change the ref to a newer release
# and run `tofu init -upgrade` and `tofu plan`.

locals {
  # Names and places come from the repository's context.json, which kubectl phd reads too.
  context = jsondecode(file("${path.module}/../context.json"))
}

module "cluster" {
  source = "git::https://github.com/{{ cookiecutter.phd_repository }}.git//infrastructure/modules/{{ cookiecutter.provider }}?ref=v{{ cookiecutter.phd_version }}"

  name        = "phd-${local.context.cluster_slug}"
  environment = local.context.environment
  region      = local.context.region
  domain      = local.context.cluster_domain

  kubernetes_version = var.kubernetes_version
  node_size          = var.node_size
  node_count_min     = var.node_count_min
  node_count_max     = var.node_count_max

  # The bucket of providers.tf's backend, which you create before `tofu init`.
  state_bucket = "tfstate-phd-{{ cookiecutter.cluster_slug }}-{{ cookiecutter.environment }}"
}

# The first apply adopts the state bucket, so that the module keeps it
# versioned and private from then on; later applies find it already adopted.
import {
{%- if cookiecutter.provider == 'digitalocean' %}
  to = module.cluster.digitalocean_spaces_bucket.state[0]
  id = "{{ cookiecutter.region }},tfstate-phd-{{ cookiecutter.cluster_slug }}-{{ cookiecutter.environment }}"
{%- else %}
  to = module.cluster.aws_s3_bucket.state[0]
  id = "tfstate-phd-{{ cookiecutter.cluster_slug }}-{{ cookiecutter.environment }}"
{%- endif %}
}
