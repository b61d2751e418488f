"""The model: configs, MNIST data, the VAE, the GMMs, the mutual-learning loop, metrics and the PCA projection."""
