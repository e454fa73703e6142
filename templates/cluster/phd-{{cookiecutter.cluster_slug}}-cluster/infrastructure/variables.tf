# Sizing of the cluster. Null leaves the choice to the module, which picks
# tested defaults for {{ cookiecutter.provider }}. Credentials are never variables: they come
# from the environment (see providers.tf).

variable "kubernetes_version" {
  description = "Kubernetes version of the cluster; null for the module's default."
  type        = string
  default     = null
}

variable "node_size" {
  description = "{{ 'Droplet size slug' if cookiecutter.provider == 'digitalocean' else 'EC2 instance type' }} of the worker nodes; null for the module's default."
  type        = string
  default     = null
}

variable "node_count_min" {
  description = "Fewest worker nodes the autoscaler keeps; null for the module's default."
  type        = number
  default     = null
}

variable "node_count_max" {
  description = "Most worker nodes the autoscaler may add; null for the module's default."
  type        = number
  default     = null
}
