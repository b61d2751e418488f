"""Pictures of a run: 2-D views (PCA, LDA, t-SNE), replay frames, GIF/MP4/PNG and the Serket-layout export."""
