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
  description = "AWS region, e.g. us-east-1, eu-west-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "The region must be an AWS region name such as us-east-1."
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
  description = "Kubernetes minor version of the EKS cluster, e.g. 1.33."
  type        = string
  default     = "1.33"
  nullable    = false

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "The Kubernetes version must be a minor version such as 1.33."
  }
}

variable "node_size" {
  description = "EC2 instance type of the worker nodes."
  type        = string
  default     = "m6i.xlarge"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.node_size))
    error_message = "The node size must be an EC2 instance type such as m6i.xlarge."
  }
}

variable "node_count_min" {
  description = "Fewest worker nodes the node group keeps."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = var.node_count_min >= 1 && floor(var.node_count_min) == var.node_count_min
    error_message = "node_count_min must be a whole number of at least 1."
  }
}

variable "node_count_max" {
  description = "Most worker nodes the node group may grow to."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.node_count_max >= var.node_count_min && floor(var.node_count_max) == var.node_count_max
    error_message = "node_count_max must be a whole number not below node_count_min."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; split into three public and three private subnets."
  type        = string
  default     = "10.40.0.0/16"
  nullable    = false

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "The VPC CIDR must be a block of /20 or larger, such as 10.40.0.0/16."
  }
}

variable "api_public_access_cidrs" {
  description = "Networks that may reach the Kubernetes API's public endpoint (operators, CI runners); narrow it where you can."
  type        = list(string)
  default     = ["0.0.0.0/0"]
  nullable    = false

  validation {
    condition     = length(var.api_public_access_cidrs) > 0 && alltrue([for cidr in var.api_public_access_cidrs : can(cidrhost(cidr, 0))])
    error_message = "api_public_access_cidrs must be a non-empty list of CIDR blocks."
  }
}

variable "mysql_engine_version" {
  description = "RDS MySQL engine version."
  type        = string
  default     = "8.0"
  nullable    = false
}

variable "mysql_instance_class" {
  description = "RDS instance class of the MySQL server."
  type        = string
  default     = "db.t4g.medium"
  nullable    = false
}

variable "mysql_allocated_storage" {
  description = "Initial storage of the MySQL server in GiB; it grows automatically up to ten times this."
  type        = number
  default     = 50
  nullable    = false

  validation {
    condition     = var.mysql_allocated_storage >= 20
    error_message = "mysql_allocated_storage must be at least 20 GiB."
  }
}

variable "documentdb_instance_class" {
  description = "Instance class of the DocumentDB (MongoDB-compatible) instances."
  type        = string
  default     = "db.t4g.medium"
  nullable    = false
}

variable "documentdb_instance_count" {
  description = "DocumentDB instances: 1 for a single server, 2 or 3 for a replica set across zones."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = contains([1, 2, 3], var.documentdb_instance_count)
    error_message = "documentdb_instance_count must be 1, 2 or 3."
  }
}

variable "high_availability" {
  description = "Run MySQL in two availability zones (RDS Multi-AZ)."
  type        = bool
  default     = true
  nullable    = false
}

variable "backup_retention_days" {
  description = "Days database snapshots and overwritten backup objects are kept."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35 (the RDS limit)."
  }
}

variable "log_retention_days" {
  description = "Days the VPC flow logs and control-plane logs are kept in CloudWatch."
  type        = number
  default     = 365
  nullable    = false

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts, such as 30, 90 or 365."
  }
}

variable "availability_zones" {
  description = "Letters of the availability zones to spread subnets over, e.g. [\"a\", \"b\", \"c\"] for us-east-1a, us-east-1b, us-east-1c."
  type        = list(string)
  default     = ["a", "b", "c"]
  nullable    = false

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3 && alltrue([for zone in var.availability_zones : can(regex("^[a-z]$", zone))])
    error_message = "availability_zones must be two or three zone letters such as [\"a\", \"b\", \"c\"]."
  }
}

variable "state_bucket" {
  description = "Name of the S3 bucket holding this stack's state, made by hand before `tofu init`; when set, the module manages it (versioning, encryption, public access block, expiry of old versions) after the root module imports it. Null leaves it alone."
  type        = string
  default     = null

  validation {
    condition     = var.state_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "The state bucket's name must be a valid S3 bucket name."
  }
}
