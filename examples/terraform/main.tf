# Terraform-managed Kubernetes: guardrail checks the objects these resources would create and
# points at the line that sets each offending value.

variable "image" {
  default = "registry.corp.example/shop/api:1.4.2"
}

resource "kubernetes_deployment_v1" "api" {
  metadata {
    name      = "api"
    namespace = "shop"
  }
  spec {
    selector {
      match_labels = { app = "api" }
    }
    template {
      metadata {
        labels = { app = "api" }
      }
      spec {
        host_network = true
        container {
          name  = "api"
          image = var.image
          resources {
            limits   = { cpu = "500m", memory = "256Mi" }
            requests = { cpu = "100m", memory = "128Mi" }
          }
        }
      }
    }
  }
}

resource "kubernetes_manifest" "worker" {
  manifest = yamldecode(file("${path.module}/worker.yaml"))
}
