//! The `opcodes!` macro and its helpers: from each entry of the table (name, operands with
//! their roles, effects) it generates the `Instr` enum, its encoding and every per-operand
//! fact. Each entry must give every operand a role and the instruction its effects, so an
//! instruction cannot be added without classifying it.

/// The Rust type (and so the encoded width) of an operand of a role.
macro_rules! role_type {
    (Dst) => {
        u16
    };
    (Src) => {
        u16
    };
    (Window $args:tt) => {
        u16
    };
    (Const) => {
        u32
    };
    (Jump) => {
        u32
    };
    (Global) => {
        u32
    };
    (Func) => {
        u32
    };
    (Type) => {
        u32
    };
    (Field) => {
        u32
    };
    (Method) => {
        u32
    };
    (Native) => {
        u32
    };
    (Count) => {
        u16
    };
    (Imm) => {
        i32
    };
    (Point) => {
        u16
    };
}

/// The `Role` value of a role as written in the table.
macro_rules! role_of {
    (Window $args:tt) => {
        Role::Window
    };
    ($role:ident) => {
        Role::$role
    };
}

/// Passes a table-reference operand through the linker's mapping; other operands unchanged.
macro_rules! remap_operand {
    (Global; $v:expr, $f:expr) => {
        $f(OperandKind::Global, $v)
    };
    (Func; $v:expr, $f:expr) => {
        $f(OperandKind::Func, $v)
    };
    (Type; $v:expr, $f:expr) => {
        $f(OperandKind::Type, $v)
    };
    (Field; $v:expr, $f:expr) => {
        $f(OperandKind::Name, $v)
    };
    (Method; $v:expr, $f:expr) => {
        $f(OperandKind::Name, $v)
    };
    (Native; $v:expr, $f:expr) => {
        $f(OperandKind::Native, $v)
    };
    (Window $args:tt; $v:expr, $f:expr) => {
        $v
    };
    ($role:ident; $v:expr, $f:expr) => {
        $v
    };
}

/// Adds the registers an operand (already widened to u32) reads or writes to `RegUse` `$u`.
/// A window's runs are relative to its base: `Window(reads 0..n)`, `Window(writes 0..2)`,
/// `Window(reads 0..2, writes 1..2)`.
macro_rules! reg_use {
    (Dst; $u:ident, $v:ident) => { $u.write($v, $v + 1) };
    (Src; $u:ident, $v:ident) => { $u.read($v, $v + 1) };
    (Window(reads $r:expr, writes $w:expr); $u:ident, $v:ident) => {{
        reg_use!(Window(reads $r); $u, $v);
        reg_use!(Window(writes $w); $u, $v);
    }};
    (Window(reads $r:expr); $u:ident, $v:ident) => {{
        let r: std::ops::Range<u32> = $r;
        $u.read($v + r.start, $v + r.end);
        $u.window($v, r.end);
    }};
    (Window(writes $w:expr); $u:ident, $v:ident) => {{
        let w: std::ops::Range<u32> = $w;
        $u.write($v + w.start, $v + w.end);
        $u.window($v, w.end);
    }};
    ($role:ident; $u:ident, $v:ident) => {};
}

/// `return Some(v)` when the operand's role is `$want` (Jump or Point); nothing for others.
macro_rules! operand_of_role {
    (Jump; Jump; $v:expr) => {
        return Some($v as usize)
    };
    (Point; Point; $v:expr) => {
        return Some($v as u16)
    };
    ($want:ident; $role:ident; $v:expr) => {};
}

/// The operand with `$t` for a `Jump` operand; other operands unchanged.
macro_rules! retarget_operand {
    (Jump; $v:expr, $t:expr) => {
        $t
    };
    (Window $args:tt; $v:expr, $t:expr) => {
        $v
    };
    ($role:ident; $v:expr, $t:expr) => {
        $v
    };
}

macro_rules! opcodes {
    ( $(
        $(#[doc = $doc:literal])*
        $name:ident { $($field:ident : $role:ident $(($($arg:tt)*))?),* }
            => $($effect:ident)|+ $(; unfused $plain:ident { $($pf:ident),* })?
    ),* $(,)? ) => {
        /// One bytecode instruction. See the table in `opcodes.rs` for each one's semantics.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Instr {
            $( $(#[doc = $doc])* $name { $($field: role_type!($role $(($($arg)*))?)),* } ),*
        }

        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[repr(u8)]
        enum Code { $($name),* }

        /// Every opcode's name, operands (name, role) and effects, in opcode order.
        pub const OPCODES: &[OpInfo] = &[
            $( OpInfo {
                name: stringify!($name),
                operands: &[$((stringify!($field), role_of!($role $(($($arg)*))?))),*],
                effects: Effects::NONE $(.union(Effects::$effect))+,
            } ),*
        ];

        impl Instr {
            /// The mnemonic, as `molt disasm` prints it.
            pub fn name(&self) -> &'static str {
                match self { $( Instr::$name { .. } => stringify!($name) ),* }
            }

            /// The opcode byte.
            pub fn opcode(&self) -> u8 {
                match self { $( Instr::$name { .. } => Code::$name as u8 ),* }
            }

            /// Operands with their names and kinds, widened to i64.
            pub fn operands(&self) -> Vec<(&'static str, OperandKind, i64)> {
                match *self {
                    $( Instr::$name { $($field),* } => vec![$((
                        stringify!($field),
                        role_of!($role $(($($arg)*))?).kind(),
                        $field as i64
                    )),*] ),*
                }
            }

            /// Calls `f` with each operand's role and value (widened to i64), in operand order;
            /// as `operands` and `roles` without allocating.
            pub fn for_each_operand(&self, mut f: impl FnMut(Role, i64)) {
                match *self {
                    $( Instr::$name { $($field),* } => { $( f(role_of!($role $(($($arg)*))?), $field as i64); )* } ),*
                }
            }

            /// The role of each operand, in operand order (as `operands`).
            pub fn roles(&self) -> &'static [(&'static str, Role)] {
                OPCODES[self.opcode() as usize].operands
            }

            /// What the instruction may do (see `Effects`).
            pub fn effects(&self) -> Effects {
                match self { $( Instr::$name { .. } => Effects::NONE $(.union(Effects::$effect))+ ),* }
            }

            /// The registers it reads and writes, windows included.
            #[allow(unused_variables)]
            pub fn reg_use(&self) -> RegUse {
                let mut u = RegUse::default();
                match *self {
                    $( Instr::$name { $($field),* } => {
                        $( let $field = $field as u32; )*
                        $( reg_use!($role $(($($arg)*))?; u, $field); )*
                    } ),*
                }
                u
            }

            /// Its `Jump` operand, if it has one.
            #[allow(unused_variables)]
            pub fn target(&self) -> Option<usize> {
                match *self {
                    $( Instr::$name { $($field),* } => { $( operand_of_role!(Jump; $role; $field); )* } ),*
                }
                None
            }

            /// This instruction jumping to `t` instead (unchanged without a `Jump` operand): how
            /// the compiler patches a forward jump once its target is known.
            #[allow(unused_variables)]
            pub fn with_target(self, t: u32) -> Instr {
                match self {
                    $( Instr::$name { $($field),* } => Instr::$name {
                        $($field: retarget_operand!($role $(($($arg)*))?; $field, t)),*
                    } ),*
                }
            }

            /// The update point it polls, if it is one.
            #[allow(unused_variables)]
            pub fn update_point(&self) -> Option<u16> {
                match *self {
                    $( Instr::$name { $($field),* } => { $( operand_of_role!(Point; $role; $field); )* } ),*
                }
                None
            }

            /// For a fused update point and back-edge, the back-edge alone, which must follow
            /// it (execution resumes there after an update).
            #[allow(unused_variables)]
            pub fn unfused(&self) -> Option<Instr> {
                match *self {
                    $( Instr::$name { $($field),* } => { $( return Some(Instr::$plain { $($pf),* }); )? } ),*
                }
                None
            }

            /// This instruction with every table reference (global, function, type, name,
            /// built-in) passed through `f`: how the linker maps a program's indices to slots.
            #[allow(unused_variables, clippy::redundant_closure_call)]
            pub fn map_refs(self, f: &mut impl FnMut(OperandKind, u32) -> u32) -> Instr {
                match self {
                    $( Instr::$name { $($field),* } => Instr::$name {
                        $($field: remap_operand!($role $(($($arg)*))?; $field, f)),*
                    } ),*
                }
            }

            /// Appends the little-endian byte encoding: opcode, then each operand at its width.
            pub fn encode(&self, out: &mut Vec<u8>) {
                out.push(self.opcode());
                match *self {
                    $( Instr::$name { $($field),* } => { $( out.extend_from_slice(&$field.to_le_bytes()); )* } ),*
                }
            }

            /// Decodes one instruction at `*pos`, advancing it.
            pub fn decode(bytes: &[u8], pos: &mut usize) -> Result<Instr, DecodeError> {
                let op = *bytes.get(*pos).ok_or(DecodeError::Truncated)?;
                *pos += 1;
                $(
                    if op == Code::$name as u8 {
                        $( let $field = {
                            type T = role_type!($role $(($($arg)*))?);
                            const N: usize = std::mem::size_of::<T>();
                            let end = *pos + N;
                            let slice = bytes.get(*pos..end).ok_or(DecodeError::Truncated)?;
                            *pos = end;
                            T::from_le_bytes(slice.try_into().map_err(|_| DecodeError::Truncated)?)
                        }; )*
                        return Ok(Instr::$name { $($field),* });
                    }
                )*
                Err(DecodeError::BadOpcode(op))
            }
        }
    };
}
