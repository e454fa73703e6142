variable "name" {
  description = "Name of the cluster and prefix of everything this module creates, e.g. phd-demo."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,32}[a-z0-9]$", var.name)) && !strcontains(var.name, "--")
    error_message = "The name must be 3 to 34 characters of lower-case letters, digits and single dashes, starting with a letter and not ending with a dash (phd-<cluster slug>)."
  }
}

variable "environment" {
  description = "Environment the cluster serves (production, staging, ...); part of resource names and tags."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.environment))
    error_message = "The environment must be 2 to 20 characters of lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "region" {
  description = "DigitalOcean region slug, e.g. nyc3, fra1, sgp1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{3}[0-9]$", var.region))
    error_message = "The region must be a DigitalOcean region slug such as nyc3 or fra1."
  }
}

variable "domain" {
  description = "Domain under which the cluster's sites and tools are served, e.g. demo.example.com."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain))
    error_message = "The domain must be a lower-case DNS name such as demo.example.com."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version prefix for DOKS, e.g. 1.33; the newest patch release of it is used."
  type        = string
  default     = "1.33"
  nullable    = false

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "The Kubernetes version must be a minor version such as 1.33."
  }
}

variable "node_size" {
  description = "Droplet size slug of the worker nodes."
  type        = string
  default     = "s-4vcpu-8gb"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.node_size))
    error_message = "The node size must be a Droplet size slug such as s-4vcpu-8gb."
  }
}

variable "node_count_min" {
  description = "Fewest worker nodes the autoscaler keeps."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = var.node_count_min >= 1 && floor(var.node_count_min) == var.node_count_min
    error_message = "node_count_min must be a whole number of at least 1."
  }
}

variable "node_count_max" {
  description = "Most worker nodes the autoscaler may add."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.node_count_max >= var.node_count_min && floor(var.node_count_max) == var.node_count_max
    error_message = "node_count_max must be a whole number not below node_count_min."
  }
}

variable "vpc_ip_range" {
  description = "Private IP range of the cluster's VPC."
  type        = string
  default     = "10.110.0.0/20"
  nullable    = false

  validation {
    condition     = can(cidrhost(var.vpc_ip_range, 0))
    error_message = "The VPC IP range must be a CIDR block such as 10.110.0.0/20."
  }
}

variable "mysql_version" {
  description = "MySQL major version of the managed database cluster."
  type        = string
  default     = "8"
  nullable    = false
}

variable "mongodb_version" {
  description = "MongoDB major version of the managed database cluster."
  type        = string
  default     = "7"
  nullable    = false
}

variable "database_size" {
  description = "Size slug of each database cluster node."
  type        = string
  default     = "db-s-1vcpu-2gb"
  nullable    = false
}

variable "database_node_count" {
  description = "Nodes per database cluster: 1 for a single server, 3 for high availability (MongoDB needs 1 or 3)."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = contains([1, 2, 3], var.database_node_count)
    error_message = "database_node_count must be 1, 2 or 3."
  }
}

variable "backup_retention_days" {
  description = "Days an overwritten or deleted backup object is kept in the backups bucket."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.backup_retention_days >= 1
    error_message = "backup_retention_days must be at least 1."
  }
}

variable "state_bucket" {
  description = "Name of the Spaces bucket holding this stack's state, made by hand before `tofu init`; when set, the module manages it (versioning, private ACL, expiry of old versions) after the root module imports it. Null leaves it alone."
  type        = string
  default     = null

  validation {
    condition     = var.state_bucket == null || can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "The state bucket's name must be 3 to 63 lower-case letters, digits and dashes."
  }
}
