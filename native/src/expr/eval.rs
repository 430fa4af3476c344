//! A rule expression's tree (`tag_rules/expr_tree.py`) and its evaluation (the helpers it calls are
//! in `helpers.rs`).

pub use super::helpers::Func;
use super::helpers::call;
use super::value::{eq, order, Order, EV};
use crate::features::num::R;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub enum Node {
    Const(EV),
    /// index into the names the expression was compiled with
    Name(usize),
    Tuple(Vec<Node>),
    List(Vec<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    If(Box<Node>, Box<Node>, Box<Node>),
    Eq(Box<Node>, Box<Node>),
    Ne(Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
    /// `lt`/`le`/`gt`/`ge` of a name and a constant (`optimize`): no clone, no helper call
    OrderConst(Order, usize, EV),
    /// `==` (or `!=` when true) of a name and a constant
    EqConst(bool, usize, EV),
}

/// The tree with the comparisons of a name with a constant as single nodes (the same results).
pub fn optimize(node: Node) -> Node {
    match node {
        Node::Call(f, mut args) => {
            let op = match f {
                Func::Lt => Some(Order::Lt),
                Func::Le => Some(Order::Le),
                Func::Gt => Some(Order::Gt),
                Func::Ge => Some(Order::Ge),
                _ => None,
            };
            if let (Some(op), [Node::Name(i), Node::Const(c)]) = (op, args.as_slice()) {
                return Node::OrderConst(op, *i, c.clone());
            }
            args = args.into_iter().map(optimize).collect();
            Node::Call(f, args)
        }
        Node::Eq(a, b) => match (*a, *b) {
            (Node::Name(i), Node::Const(c)) => Node::EqConst(false, i, c),
            (a, b) => Node::Eq(Box::new(optimize(a)), Box::new(optimize(b))),
        },
        Node::Ne(a, b) => match (*a, *b) {
            (Node::Name(i), Node::Const(c)) => Node::EqConst(true, i, c),
            (a, b) => Node::Ne(Box::new(optimize(a)), Box::new(optimize(b))),
        },
        Node::Tuple(items) => Node::Tuple(items.into_iter().map(optimize).collect()),
        Node::List(items) => Node::List(items.into_iter().map(optimize).collect()),
        Node::And(items) => Node::And(items.into_iter().map(optimize).collect()),
        Node::Or(items) => Node::Or(items.into_iter().map(optimize).collect()),
        Node::Not(x) => Node::Not(Box::new(optimize(*x))),
        Node::If(a, b, c) => Node::If(Box::new(optimize(*a)), Box::new(optimize(*b)), Box::new(optimize(*c))),
        other => other,
    }
}

/// The tree with each name slot replaced by `slots[slot]` (a tag's names as the engine's name indexes).
pub fn remap(node: &mut Node, slots: &[usize]) {
    match node {
        Node::Const(_) => {}
        Node::Name(i) => *i = slots[*i],
        Node::Tuple(items) | Node::List(items) | Node::And(items) | Node::Or(items) | Node::Call(_, items) => {
            items.iter_mut().for_each(|n| remap(n, slots))
        }
        Node::Not(x) => remap(x, slots),
        Node::OrderConst(_, i, _) | Node::EqConst(_, i, _) => *i = slots[*i],
        Node::If(a, b, c) => {
            remap(a, slots);
            remap(b, slots);
            remap(c, slots);
        }
        Node::Eq(a, b) | Node::Ne(a, b) => {
            remap(a, slots);
            remap(b, slots);
        }
    }
}

pub fn eval(node: &Node, env: &[EV]) -> R<EV> {
    Ok(match node {
        Node::Const(v) => v.clone(),
        Node::Name(i) => env.get(*i).cloned().unwrap_or(EV::None),
        Node::Tuple(items) => EV::Tuple(Rc::new(items.iter().map(|n| eval(n, env)).collect::<R<Vec<_>>>()?)),
        Node::List(items) => EV::List(Rc::new(items.iter().map(|n| eval(n, env)).collect::<R<Vec<_>>>()?)),
        Node::And(items) => {
            let mut last = EV::None;
            for n in items {
                last = eval(n, env)?;
                if !last.truthy() {
                    break;
                }
            }
            last
        }
        Node::Or(items) => {
            let mut last = EV::None;
            for n in items {
                last = eval(n, env)?;
                if last.truthy() {
                    break;
                }
            }
            last
        }
        Node::Not(x) => EV::Bool(!eval(x, env)?.truthy()),
        Node::If(t, a, b) => {
            if eval(t, env)?.truthy() {
                eval(a, env)?
            } else {
                eval(b, env)?
            }
        }
        Node::Eq(a, b) => EV::Bool(eq(&eval(a, env)?, &eval(b, env)?)),
        Node::Ne(a, b) => EV::Bool(!eq(&eval(a, env)?, &eval(b, env)?)),
        Node::OrderConst(op, i, c) => {
            let v = env.get(*i).unwrap_or(&EV::None);
            EV::Bool(!matches!(v, EV::None) && order(*op, v, c).unwrap_or(false))
        }
        Node::EqConst(negate, i, c) => EV::Bool(eq(env.get(*i).unwrap_or(&EV::None), c) != *negate),
        Node::Call(f, args) => match args.as_slice() {
            // one or two arguments (every operator, most calls) without a Vec
            [a] => call(*f, &[eval(a, env)?])?,
            [a, b] => call(*f, &[eval(a, env)?, eval(b, env)?])?,
            _ => call(*f, &args.iter().map(|n| eval(n, env)).collect::<R<Vec<_>>>()?)?,
        },
    })
}
