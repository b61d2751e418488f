"""The How it works page: the model, its two objectives and what to look for, written for students."""
from __future__ import annotations

import streamlit as st

from dashboard.components.feedback_effect import measured_feedback_effect
from dashboard.components.feedback_map_view import PAIR_LINK, feedback_map_section


def how_it_works_page() -> None:
    """The whole page (below the navigation)."""
    st.title("How it works")
    st.markdown("""
    Two models learn from the same images and help each other. This is the **VAE + GMM** example of
    [Serket](https://github.com/naka-lab/Serket), a framework for building large models out of small modules that
    send each other *messages*.

    * The **VAE** (variational auto-encoder) squeezes each 28×28 image $o$ into a short code $z$ (the *latent*
      vector, D numbers) and learns to rebuild the image from the code.
    * The **GMM** (Gaussian mixture model) looks only at the codes and sorts them into K groups, each a round cloud
      with its own centre $\\mu_c$. It never sees a label.

    Neither model is told which digit an image shows. The labels are used only to *score* the grouping.
    """)
    _models()
    _messages()
    _what_to_look_for()
    _where_feedback_matters()
    _controls()


def _models() -> None:
    """The two models: the VAE compresses, the GMM groups the codes."""
    st.header("1. The VAE compresses")
    st.markdown("""
    The encoder maps an image to a small Gaussian cloud in latent space, $q(z \\mid o)$, with a mean and a spread.
    The decoder maps a code back to 784 pixel probabilities, $p(o \\mid z)$. A plain VAE is trained to make

    * the rebuilt image close to the original (the **reconstruction** term), and
    * each cloud close to a standard normal $\\mathcal{N}(0, I)$ centred at the origin (the **KL** term), which keeps the codes
      tidy and lets us sample.
    """)
    st.latex(r"\mathcal{L}_{\text{plain VAE}} = -\,\mathrm{KL}\big(q(z\mid o)\,\|\,\mathcal{N}(0, I)\big)"
             r" + \mathbb{E}_{q(z\mid o)}\big[\log p(o\mid z)\big]")

    st.header("2. The GMM groups the codes")
    st.markdown("""
    Given the codes of all images, the GMM finds K clusters: for each class $c$ a mean $\\mu_c$, a covariance and a
    weight, and for each image the class it most likely belongs to. The dashboard offers three ways to fit it:

    * **Collapsed Gibbs (Serket)**: Serket's own sampler. One image at a time leaves its class and picks a new one at
      random, with a chance proportional to how many images the class holds times how well the image fits the
      class's other images; 100 passes over all images. A class that loses its last image is gone for good. It is
      random, so classes can differ between runs.
    * **Blocked Gibbs**: the same Bayesian model, sampled for all images at once (empty classes can come back).
    * **EM**: scikit-learn's deterministic maximum-likelihood fit.
    """)


def _messages() -> None:
    """The messages between them, and the loss term by term."""
    st.header("3. The messages: mutual learning")
    st.markdown("""
    The two models talk in a loop. One **iteration** is:

    1. **VAE → GMM:** the VAE encodes every image and sends its code $z$ (its mean, or one random sample of
       $q(z \\mid o)$) to the GMM.
    2. The GMM clusters the codes.
    3. **GMM → VAE:** the GMM sends back, for every image, the mean $\\mu_c$ of the class that image was put in
       (for Serket's sampler: the class it was drawn into on the last pass).
    4. The VAE trains again, but now the centre of each image's prior is *its class mean* instead of the origin:
    """)
    st.latex(r"\mathcal{L}(\theta, \phi; o) = -\,\alpha\,\mathrm{KL}\big(q_\phi(z\mid o)\,\|\,"
             r"\mathcal{N}(\mu_c, I)\big) + \mathbb{E}_{q_\phi(z\mid o)}\big[\log p_\theta(o\mid z)\big]")
    st.markdown("""
    Read it term by term:

    * $\\mathbb{E}_q[\\log p(o \\mid z)]$ rewards codes from which the image can be rebuilt (the reconstruction in the loss chart
      is its negative, the binary cross-entropy summed over pixels).
    * $\\mathrm{KL}(q(z \\mid o) \\,\\|\\, \\mathcal{N}(\\mu_c, I))$ is small when the image's code sits near the centre of *its* class. Images the GMM
      put together are pulled together.
    * **α** sets how hard that pull is. With α = 0 the GMM's message is ignored; a large α packs each class tightly,
      but too large a value (or a high learning rate) can make training blow up: the run then stops with a message.

    Because similar images end up with similar codes and each class becomes a tight cloud, the next GMM fit finds
    cleaner clusters, which sends better centres back, and so on. Iteration 0 is the picture before any training:
    a random encoder's codes, clustered.
    """)


def _what_to_look_for() -> None:
    """What each chart shows."""
    st.header("4. What to look for")
    st.markdown("""
    * **The latent scatter** shows the codes flattened to 2-D. It moves *while the VAE trains*: about once a second
      the page shows where every code is right now, in the axes of the last finished iteration, coloured by digit or
      by the GMM class each image had at the end of that iteration. Watch the points of one class drift toward their
      cross: the crosses are the class means the GMM sent back, the centres the VAE is pulling the codes toward.
      Coloured by **digit**: at iteration 0 the colours are mixed; after training, each colour gathers in its own
      region. Coloured by **GMM class**: do the GMM's groups follow the digits?
    * **View** chooses how the D numbers of each code are flattened to two:
      **PCA**, the two directions of largest spread (honest about distances, but classes that are apart in D
      dimensions can overlap: most digits look like one cloud); **LDA**, the two directions that best separate the
      classes *the GMM found* (it never sees the labels), so it shows whether the GMM's classes really are apart; and
      **t-SNE**, a map that keeps neighbours together: groups are clusters in the full code, but the gaps between
      groups and their sizes mean little. t-SNE takes a few seconds per iteration, so it shows the last finished
      iteration while the VAE trains.
    * **Replay** (once a run has finished or is stopped) plays the whole run again: every iteration and the snapshots
      in between, with a slider. **GIF** and **MP4** download the same as an animation for slides, **PNG** the
      picture on screen.
    * **Before vs after** repeats the figure of Serket's tutorial: iteration 0 next to the latest iteration.
    * **Accuracy, NMI, ARI** measure how well the classes match the digits (1 is perfect). Accuracy uses the best
      one-to-one pairing of classes with digits; NMI and ARI need no pairing. They usually jump after iteration 1
      (the VAE alone already separates digits a bit) and then tend to rise as the feedback tightens the classes;
      Gibbs sampling is random, so the curve can also wobble from one iteration to the next.
      Some digits look alike (4 and 9, 3 5 and 8) and often share a class: look at the confusion matrix in the
      **Latent explorer**.
    * **The loss terms**: the reconstruction error falls within each iteration. At the start of an iteration the
      α·KL term can jump: the prior centres just moved to the new class means.
    * **Compare runs**: run the same settings with feedback off (or α = 0) and on. Without the feedback the VAE
      does not know about the classes: does the accuracy end lower? Try a few seeds before concluding.
    """)
    measured_feedback_effect()
    st.markdown("""
    * **Latent explorer**: click a point to see its image, its reconstruction and its class mean decoded into an
      image. As the iterations go on, the decoded class means turn from grey blobs into recognisable digits.
    """)


def _where_feedback_matters() -> None:
    """The measured map of the feedback's effect, the held-out confirmations, and the side-by-side link."""
    st.header("5. Where feedback matters")
    st.markdown(f"""
    Does the GMM's feedback actually help? It depends on the setting. Each square below trained the same seeds twice,
    with feedback and without (the same images and initial weights), and shows by how many **points of final
    accuracy** feedback won on average, with its 95 % confidence interval in brackets and on how many seeds it was
    better. Blue: feedback helps; red: it hurts; white: no difference. An interval that includes 0 means those seeds
    cannot tell the two apart. The left-out squares were not measured.

    What the map found (tuning seeds, then held-out seeds 100-109): feedback matters where the **pull is strong**
    (a large **α**) and the VAE is updated in **short bursts, many times** (10 epochs x 20 iterations), so that the
    class means act early and often. At α = 8 a plain VAE's KL term squeezes every code toward the origin and the
    digits overlap; the GMM's class means give each class its own centre, and feedback wins by about 12 points on
    held-out seeds (the table below). At α = 1 both reach about 0.75 and feedback adds little: the strong pull
    costs accuracy on both sides, but it is where the feedback's work is easiest to see. A small latent space
    (D = 4) showed no larger effect.

    To see it happen, open [**with and without feedback, side by side**]({PAIR_LINK}): one Start trains the
    **Feedback lesson** preset twice on one seed, the two latent pictures next to each other and both accuracy curves
    on one chart with the gap labelled.
    """)
    feedback_map_section()


def _controls() -> None:
    """What the buttons do."""
    st.header("6. The controls")
    st.markdown("""
    * **Start** trains in the background: the status, the progress bar, the loss chart and the latent scatter refresh
      about once a second; the metrics chart and the before/after pictures each time an iteration finishes.
    * **Pause / Resume** halts between two mini-batches; **Step** runs one more iteration and pauses again;
      **Stop** ends the run (what is finished is kept); **Reset** clears the page for new settings.
    * The settings are in the page's address: copy the link to share exactly this experiment.
    * The server trains only a few runs at a time (one per CPU core by default); extra runs wait in a queue and
      start by themselves.
    """)
