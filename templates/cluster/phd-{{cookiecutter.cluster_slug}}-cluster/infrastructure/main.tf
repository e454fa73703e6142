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
}
