data "aws_iam_policy_document" "eks_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "eks_cluster" {
  name               = "${local.short_prefix}-eks-cluster"
  assume_role_policy = data.aws_iam_policy_document.eks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "eks_cluster" {
  role       = aws_iam_role.eks_cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

# EKS writes the control plane's logs here; created first so that retention
# and encryption apply from the start.
resource "aws_cloudwatch_log_group" "eks" {
  name              = "/aws/eks/${local.prefix}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.cluster.arn
  tags              = local.tags
}

resource "aws_eks_cluster" "cluster" {
  name                      = local.prefix
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.eks_cluster.arn
  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  tags                      = local.tags

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  vpc_config {
    subnet_ids              = aws_subnet.private[*].id
    endpoint_private_access = true
    endpoint_public_access  = true
    public_access_cidrs     = var.api_public_access_cidrs
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = aws_kms_key.cluster.arn
    }
  }

  depends_on = [
    aws_iam_role_policy_attachment.eks_cluster,
    aws_cloudwatch_log_group.eks,
  ]
}

data "aws_iam_policy_document" "nodes_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "nodes" {
  name               = "${local.short_prefix}-eks-nodes"
  assume_role_policy = data.aws_iam_policy_document.nodes_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "nodes" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
  ])
  role       = aws_iam_role.nodes.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_eks_node_group" "workers" {
  cluster_name    = aws_eks_cluster.cluster.name
  node_group_name = "${local.short_prefix}-workers"
  node_role_arn   = aws_iam_role.nodes.arn
  subnet_ids      = aws_subnet.private[*].id
  instance_types  = [var.node_size]
  tags            = local.tags

  scaling_config {
    min_size     = var.node_count_min
    desired_size = var.node_count_min
    max_size     = var.node_count_max
  }

  update_config {
    max_unavailable = 1
  }

  # The autoscaler (below) changes the desired size; a plan must not undo it.
  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.nodes]
}

locals {
  # A kubeconfig that gets its token from the AWS CLI at each use, so it holds no secret.
  kubeconfig = yamlencode({
    apiVersion      = "v1"
    kind            = "Config"
    current-context = aws_eks_cluster.cluster.name
    clusters = [{
      name = aws_eks_cluster.cluster.name
      cluster = {
        server                     = aws_eks_cluster.cluster.endpoint
        certificate-authority-data = aws_eks_cluster.cluster.certificate_authority[0].data
      }
    }]
    contexts = [{
      name = aws_eks_cluster.cluster.name
      context = {
        cluster = aws_eks_cluster.cluster.name
        user    = aws_eks_cluster.cluster.name
      }
    }]
    users = [{
      name = aws_eks_cluster.cluster.name
      user = {
        exec = {
          apiVersion = "client.authentication.k8s.io/v1beta1"
          command    = "aws"
          args       = ["eks", "get-token", "--cluster-name", aws_eks_cluster.cluster.name, "--region", data.aws_region.current.region, "--output", "json"]
        }
      }
    }]
  })
}

# Volumes for Open edX: Tutor's Meilisearch and Redis keep their data in
# PersistentVolumeClaims, which EKS cannot provision without the EBS CSI
# driver (EKS installs no storage driver and, since 1.30, no default
# StorageClass; the cluster repository's cluster/apps/storage-class.yml adds
# the default gp3 class that uses this driver). The driver's controller gets
# its AWS permissions through EKS Pod Identity, whose agent is an add-on too.
resource "aws_eks_addon" "pod_identity_agent" {
  cluster_name = aws_eks_cluster.cluster.name
  addon_name   = "eks-pod-identity-agent"
  tags         = local.tags
}

data "aws_iam_policy_document" "pods_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ebs_csi" {
  name               = "${local.short_prefix}-ebs-csi"
  assume_role_policy = data.aws_iam_policy_document.pods_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.ebs_csi.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}

resource "aws_eks_addon" "ebs_csi" {
  cluster_name = aws_eks_cluster.cluster.name
  addon_name   = "aws-ebs-csi-driver"
  tags         = local.tags

  pod_identity_association {
    role_arn        = aws_iam_role.ebs_csi.arn
    service_account = "ebs-csi-controller-sa"
  }

  # Its controller runs on the nodes and authenticates through the agent.
  depends_on = [
    aws_eks_node_group.workers,
    aws_eks_addon.pod_identity_agent,
    aws_iam_role_policy_attachment.ebs_csi,
  ]
}

# Node autoscaling between node_count_min and node_count_max: EKS changes a
# managed node group's size only when something asks it to. Cluster
# Autoscaler (the cluster repository's cluster/apps/cluster-autoscaler.yml,
# run by Argo CD in kube-system as service account cluster-autoscaler) finds
# the group by the tags EKS puts on its Auto Scaling group
# (k8s.io/cluster-autoscaler/enabled and k8s.io/cluster-autoscaler/<cluster>)
# and gets these permissions through EKS Pod Identity: the read-only calls on
# every group, and resizing only the groups of this cluster (the policy of
# the Cluster Autoscaler's AWS documentation, cloudprovider/aws/README.md).
data "aws_iam_policy_document" "cluster_autoscaler" {
  statement {
    sid = "Discover"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
      "eks:DescribeNodegroup",
    ]
    resources = ["*"]
  }

  statement {
    sid = "ResizeThisClustersGroups"
    actions = [
      "autoscaling:SetDesiredCapacity",
      "autoscaling:TerminateInstanceInAutoScalingGroup",
    ]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${aws_eks_cluster.cluster.name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role" "cluster_autoscaler" {
  name               = "${local.short_prefix}-cluster-autoscaler"
  assume_role_policy = data.aws_iam_policy_document.pods_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  name   = "cluster-autoscaler"
  role   = aws_iam_role.cluster_autoscaler.id
  policy = data.aws_iam_policy_document.cluster_autoscaler.json
}

resource "aws_eks_pod_identity_association" "cluster_autoscaler" {
  cluster_name    = aws_eks_cluster.cluster.name
  namespace       = "kube-system"
  service_account = "cluster-autoscaler"
  role_arn        = aws_iam_role.cluster_autoscaler.arn
  tags            = local.tags

  depends_on = [aws_eks_addon.pod_identity_agent]
}
