//! `wsgi.file_wrapper`: wraps a file-like object. When the app returns the
//! wrapper itself and the object has a `fileno()` of a regular file, the
//! response is sent with sendfile(2) from the file's current position;
//! otherwise the wrapper is an ordinary iterable reading `blksize` bytes at
//! a time (PEP 3333 "Optional Platform-Specific File Handling").

use std::fs::File;
use std::io::Seek;
use std::os::fd::{FromRawFd, OwnedFd};

use pyo3::prelude::*;

/// The wrapper object.
#[pyclass(module = "uwsgi", frozen)]
pub(crate) struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: Py<PyAny>, blksize: isize) -> FileWrapper {
        FileWrapper {
            filelike,
            blksize: usize::try_from(blksize).unwrap_or(8192).max(1),
        }
    }

    #[getter]
    fn filelike(&self, py: Python<'_>) -> Py<PyAny> {
        self.filelike.clone_ref(py)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let chunk = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        Ok((chunk.len().unwrap_or(0) > 0).then_some(chunk))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}

/// A regular file to sendfile from, with the bytes left from its current
/// position; `None` when the wrapped object has no usable descriptor.
pub(crate) fn sendfile_source(
    py: Python<'_>,
    wrapper: &Bound<'_, FileWrapper>,
) -> Option<(File, u64)> {
    let filelike = wrapper.get().filelike.bind(py);
    // Flush Python-level buffers so the descriptor's offset is the logical one.
    let pos: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
    let fd: i32 = filelike.call_method0("fileno").ok()?.extract().ok()?;
    let dup: i32 = py
        .import("os")
        .ok()?
        .call_method1("dup", (fd,))
        .ok()?
        .extract()
        .ok()?;
    // SAFETY: `os.dup` just returned a new descriptor that nothing else
    // owns; the OwnedFd closes it when the File drops.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(dup) });
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    file.seek(std::io::SeekFrom::Start(pos)).ok()?;
    Some((file, meta.len().saturating_sub(pos)))
}
