//! Rows that may lie in two slices (a forked run's KV cache).

/// Rows of `stride` elements held in up to two slices, the second going on
/// where the first ends: the KV cache of a forked run keeps the prefix it
/// shares with its forks in one buffer and its own rows in another. Row j
/// starts at j * stride of the two slices' concatenation; `columns` starts
/// every row further in (one head's columns).
#[derive(Clone, Copy, Debug)]
pub struct RowParts<'a, T> {
    parts: [&'a [T]; 2],
    first_rows: usize,
    stride: usize,
}

impl<'a, T> RowParts<'a, T> {
    /// `first` holds whole rows (a multiple of `stride` elements).
    pub fn new(first: &'a [T], second: &'a [T], stride: usize) -> Self {
        assert!(stride > 0 && first.len().is_multiple_of(stride));
        Self {
            parts: [first, second],
            first_rows: first.len() / stride,
            stride,
        }
    }

    /// Rows in one slice.
    pub fn contiguous(rows: &'a [T], stride: usize) -> Self {
        Self::new(&[], rows, stride)
    }

    /// The same rows from column `offset` on.
    pub fn columns(self, offset: usize) -> Self {
        let skip = |p: &'a [T]| p.get(offset..).unwrap_or(&[]);
        Self {
            parts: [skip(self.parts[0]), skip(self.parts[1])],
            ..self
        }
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The elements of both slices in order (whole rows unless `columns`
    /// moved their starts).
    pub fn iter(&self) -> impl Iterator<Item = &'a T> + 'a {
        self.parts[0].iter().chain(self.parts[1])
    }

    /// Where rows 0..rows start, for a kernel that reads `len` elements
    /// of each: (first part, rows in it, second part), every row checked
    /// to lie in its slice.
    pub(super) fn starts(&self, rows: usize, len: usize) -> (*const T, usize, *const T) {
        let covers = |part: &[T], n: usize| n == 0 || part.len() >= (n - 1) * self.stride + len;
        let in_first = rows.min(self.first_rows);
        assert!(covers(self.parts[0], in_first) && covers(self.parts[1], rows - in_first));
        (
            self.parts[0].as_ptr(),
            self.first_rows,
            self.parts[1].as_ptr(),
        )
    }

    /// `len` elements of row j.
    #[inline]
    pub fn row(&self, j: usize, len: usize) -> &'a [T] {
        let (part, at) = if j < self.first_rows {
            (self.parts[0], j * self.stride)
        } else {
            (self.parts[1], (j - self.first_rows) * self.stride)
        };
        &part[at..at + len]
    }
}
