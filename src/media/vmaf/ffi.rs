//! The owners of libvmaf's objects — [`Model`], [`Context`], [`Picture`] — and every unsafe call into libvmaf.
//!
//! libvmaf is reached through the raw `libvmaf-sys` bindings; the unsafe calls are confined to these three small
//! owners, which release what libvmaf allocated. What is safe to do with them is in `scorer.rs`.

use super::{VmafError, MODEL_VERSION};
use libvmaf_sys as ffi;
use std::ffi::CStr;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::path::Path;
use std::ptr::{self, NonNull};

const MODEL_VERSION_C: &CStr = c"vmaf_v0.6.1";
/// Name under which libvmaf stores the model's per-frame scores.
const MODEL_NAME_C: &CStr = c"vmaf";

/// A libvmaf call that failed, and why.
#[derive(Debug)]
pub(super) struct VmafFailure {
    pub(super) call: &'static str,
    pub(super) reason: String,
}

impl VmafFailure {
    pub(super) fn about(self, rendition: &Path) -> VmafError {
        VmafError::Vmaf { path: rendition.to_owned(), call: self.call, reason: self.reason }
    }
}

/// libvmaf returns 0 or a negative errno.
fn check(rc: std::ffi::c_int, call: &'static str) -> Result<(), VmafFailure> {
    match rc {
        0 => Ok(()),
        rc if rc < 0 => Err(VmafFailure { call, reason: std::io::Error::from_raw_os_error(-rc).to_string() }),
        rc => Err(VmafFailure { call, reason: format!("error code {rc}") }),
    }
}

/// A loaded VMAF model, destroyed on drop.
pub(super) struct Model(NonNull<ffi::VmafModel>);

impl Model {
    /// The built-in [`MODEL_VERSION`] (compiled into libvmaf; its absence means libvmaf was built without xxd).
    pub(super) fn load() -> Result<Model, VmafFailure> {
        let mut cfg = ffi::VmafModelConfig {
            name: MODEL_NAME_C.as_ptr(),
            flags: ffi::VmafModelFlags::VMAF_MODEL_FLAGS_DEFAULT as u64,
        };
        let mut model = ptr::null_mut();
        // SAFETY: `model` is a valid out-pointer; `cfg` and the version string are valid for the call (libvmaf copies
        // the name into the model), and the strings are NUL-terminated 'static literals.
        let rc = unsafe { ffi::vmaf_model_load(&mut model, &mut cfg, MODEL_VERSION_C.as_ptr()) };
        // The usual cause is a libvmaf built without its models (they are compiled in with xxd).
        check(rc, "vmaf_model_load").map_err(|e| VmafFailure {
            reason: format!("built-in model {MODEL_VERSION} not available: {}", e.reason),
            ..e
        })?;
        NonNull::new(model)
            .map(Model)
            .ok_or(VmafFailure { call: "vmaf_model_load", reason: "no model returned".into() })
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful vmaf_model_load and is destroyed exactly once, here.
        unsafe { ffi::vmaf_model_destroy(self.0.as_ptr()) };
    }
}

/// A libvmaf context (feature extractors, worker threads, collected scores), closed on drop.
pub(super) struct Context(NonNull<ffi::VmafContext>);

impl Context {
    pub(super) fn new(threads: u32, subsample: u32) -> Result<Context, VmafFailure> {
        let cfg = ffi::VmafConfiguration {
            log_level: ffi::VmafLogLevel::VMAF_LOG_LEVEL_ERROR,
            n_threads: threads,
            n_subsample: subsample,
            // No CPU feature is masked out: use every SIMD path libvmaf finds.
            cpumask: 0,
        };
        let mut context = ptr::null_mut();
        // SAFETY: `context` is a valid out-pointer and the configuration is passed by value. On failure libvmaf has
        // already freed what it allocated, so the pointer is only kept on success.
        check(unsafe { ffi::vmaf_init(&mut context, cfg) }, "vmaf_init")?;
        NonNull::new(context)
            .map(Context)
            .ok_or(VmafFailure { call: "vmaf_init", reason: "no context returned".into() })
    }

    /// Has the context compute the features `model` scores with.
    pub(super) fn use_features_of(&mut self, model: &Model) -> Result<(), VmafFailure> {
        // SAFETY: both pointers are live (owned by `self` and `model`).
        let rc = unsafe { ffi::vmaf_use_features_from_model(self.0.as_ptr(), model.0.as_ptr()) };
        check(rc, "vmaf_use_features_from_model")
    }

    /// Hands a pair of pictures to libvmaf as frame `index`. On success libvmaf owns them; on failure they are
    /// released here.
    pub(super) fn read_pictures(
        &mut self,
        reference: Picture,
        distorted: Picture,
        index: u32,
    ) -> Result<(), VmafFailure> {
        let mut reference = ManuallyDrop::new(reference);
        let mut distorted = ManuallyDrop::new(distorted);
        // SAFETY: the context is live and both pictures are valid, exclusively ours. On success libvmaf takes over
        // both references (it unrefs them when its extractors are done), so they must not be dropped here.
        let rc = unsafe { ffi::vmaf_read_pictures(self.0.as_ptr(), &mut reference.raw, &mut distorted.raw, index) };
        if let Err(e) = check(rc, "vmaf_read_pictures") {
            // On failure libvmaf has not released our references (it only takes extra ones of its own): drop them.
            drop(ManuallyDrop::into_inner(reference));
            drop(ManuallyDrop::into_inner(distorted));
            return Err(e);
        }
        Ok(())
    }

    /// Flushes the feature extractors: every frame handed over is computed when this returns.
    pub(super) fn flush(&mut self) -> Result<(), VmafFailure> {
        // SAFETY: a live context; a pair of NULL pictures is libvmaf's flush request.
        let rc = unsafe { ffi::vmaf_read_pictures(self.0.as_ptr(), ptr::null_mut(), ptr::null_mut(), 0) };
        check(rc, "vmaf_read_pictures")
    }

    /// `model`'s score of frame `index`.
    pub(super) fn score_at(&self, model: &Model, index: u32) -> Result<f64, VmafFailure> {
        let mut value = 0.0;
        // SAFETY: live context and model, a valid out-pointer; the caller asks only for indices handed to libvmaf
        // and scored.
        let rc = unsafe { ffi::vmaf_score_at_index(self.0.as_ptr(), model.0.as_ptr(), &mut value, index) };
        check(rc, "vmaf_score_at_index")?;
        Ok(value)
    }

    /// `model`'s scores of the frames `first..=last`, pooled by `pool`.
    pub(super) fn pooled(&self, model: &Model, pool: Pool, first: u32, last: u32) -> Result<f64, VmafFailure> {
        let method = match pool {
            Pool::Mean => ffi::VmafPoolingMethod::VMAF_POOL_METHOD_MEAN,
            Pool::Min => ffi::VmafPoolingMethod::VMAF_POOL_METHOD_MIN,
        };
        let mut value = 0.0;
        // SAFETY: live context and model, a valid out-pointer; with n_subsample libvmaf pools exactly the indices it
        // scored.
        let rc = unsafe { ffi::vmaf_score_pooled(self.0.as_ptr(), model.0.as_ptr(), method, &mut value, first, last) };
        check(rc, "vmaf_score_pooled")?;
        Ok(value)
    }
}

/// How [`Context::pooled`] pools per-frame scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pool {
    Mean,
    Min,
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful vmaf_init and is closed exactly once, here; vmaf_close waits for
        // its worker threads, which may still hold pictures handed to it.
        unsafe { ffi::vmaf_close(self.0.as_ptr()) };
    }
}

/// An 8-bit YUV 4:2:0 picture allocated by libvmaf (zero-filled), unref'd on drop unless handed to libvmaf.
pub(super) struct Picture {
    raw: ffi::VmafPicture,
}

impl Picture {
    pub(super) fn new(width: u32, height: u32) -> Result<Picture, VmafFailure> {
        let mut raw = MaybeUninit::<ffi::VmafPicture>::zeroed();
        // SAFETY: `raw` points to writable memory for one VmafPicture, which vmaf_picture_alloc fills in.
        let rc = unsafe {
            ffi::vmaf_picture_alloc(raw.as_mut_ptr(), ffi::VmafPixelFormat::VMAF_PIX_FMT_YUV420P, 8, width, height)
        };
        check(rc, "vmaf_picture_alloc")?;
        // SAFETY: vmaf_picture_alloc succeeded, so every field is initialised (and all-zero was valid to begin with).
        Ok(Picture { raw: unsafe { raw.assume_init() } })
    }

    /// Copies `src` into plane `index` (0 = Y, 1 = U, 2 = V).
    pub(super) fn fill(&mut self, index: usize, src: &Plane) -> Result<(), VmafFailure> {
        let failure = |reason: String| VmafFailure { call: "copying a frame", reason };
        let width = self.raw.w[index] as usize;
        let height = self.raw.h[index] as usize;
        let stride = usize::try_from(self.raw.stride[index]).map_err(|_| failure("negative picture stride".into()))?;
        let data = self.raw.data[index].cast::<u8>();
        if data.is_null() {
            return Err(failure(format!("picture plane {index} is not allocated")));
        }
        // SAFETY: vmaf_picture_alloc allocated `stride × height` bytes for this plane (one aligned block holding the
        // three planes), and this picture is not shared with libvmaf until it is handed over, so nothing else reads or
        // writes it while the slice lives.
        let dst = unsafe { std::slice::from_raw_parts_mut(data, stride * height) };
        copy_plane(dst, stride, width, height, src).map_err(|e| failure(format!("plane {index}: {e}")))
    }
}

impl Drop for Picture {
    fn drop(&mut self) {
        if !self.raw.ref_.is_null() {
            // SAFETY: the picture came from vmaf_picture_alloc and was not handed to libvmaf (that path never drops
            // it), so this is the one reference left to release.
            unsafe { ffi::vmaf_picture_unref(&mut self.raw) };
        }
    }
}

/// One plane of an 8-bit picture: `height` rows of `width` bytes, each starting `stride` bytes after the previous.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plane<'a> {
    pub(super) data: &'a [u8],
    pub(super) stride: usize,
    pub(super) width: usize,
    pub(super) height: usize,
}

/// Copies `height` rows of `width` bytes from `src` into `dst` (rows `dst_stride` apart).
fn copy_plane(dst: &mut [u8], dst_stride: usize, width: usize, height: usize, src: &Plane) -> Result<(), String> {
    if height == 0 || width == 0 {
        return Ok(());
    }
    if src.width < width || src.height < height {
        return Err(format!("a {}x{} plane where {width}x{height} is needed", src.width, src.height));
    }
    if src.stride < width || src.data.len() < (height - 1) * src.stride + width {
        return Err(format!("plane data of {} bytes is too short for stride {}", src.data.len(), src.stride));
    }
    if dst_stride < width || dst.len() < height * dst_stride {
        return Err(format!("destination of {} bytes is too short for stride {dst_stride}", dst.len()));
    }
    for (dst_row, src_row) in dst.chunks_mut(dst_stride).zip(src.data.chunks(src.stride)).take(height) {
        dst_row[..width].copy_from_slice(&src_row[..width]);
    }
    Ok(())
}
