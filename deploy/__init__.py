"""Deploy targets: `local` (replica supervisor with a pre-imported zygote); knative and lambda come next."""
